//! The duty console (SPEC §8, `GET /`): one page where a duty officer sees the open incidents
//! and firing alerts with their timeline and values, each station's status, and the silences;
//! acknowledges an alert or an incident with a name and a comment; creates and ends silences.
//!
//! Fed by nothing at run time: the page, its script and its style sheet are files under
//! `src/console/` compiled into the binary (`include_str!`), so there is no build step, no
//! outside asset (no CDN, no web font) and the page works offline on a bureau's intranet. The
//! script reads and writes through the JSON API in `http`, like any other client.
//!
//! Security, by construction rather than by checks:
//! - The bearer token is pasted by the user, kept in the tab's `sessionStorage` (gone when the
//!   tab closes) and sent by `fetch` in an `Authorization` header. It is never a cookie, so a
//!   page of another site cannot make the browser send it: a cross-site request arrives
//!   without credentials and the write endpoints answer 401. That is why no CSRF token is
//!   needed.
//! - The script builds the page with `createElement` and `textContent` only, never
//!   `innerHTML` with data, so a station name or a silence reason is shown as text.
//! - Every asset carries [`CSP`] (scripts and styles only from this origin, no inline script,
//!   no framing, no form posts), `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//!   no-referrer` and `X-Frame-Options: DENY`. Script and style are served as their own
//!   paths so the policy needs no `'unsafe-inline'`: even markup that slipped into the page
//!   could not run.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page: markup only; the script and the style sheet are separate paths (see [`CSP`]).
pub const PAGE: &str = include_str!("console/index.html");
/// The page's script, served at `/console.js`.
pub const SCRIPT: &str = include_str!("console/console.js");
/// The page's style sheet, served at `/console.css`.
pub const STYLE: &str = include_str!("console/console.css");

/// The Content-Security-Policy of the console's responses: nothing by default; script, style
/// and `fetch` only from this origin; no inline script or style attribute, no plugins, no
/// `<base>`, no form submission, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The console's routes (`/`, `/console.js`, `/console.css`), for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// One embedded file with the security headers. `no-cache`: after an upgrade the browser
/// revalidates and gets the new page with its matching script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each embedded file, by name, for the checks below.
    const FILES: [(&str, &str); 3] = [
        ("index.html", PAGE),
        ("console.js", SCRIPT),
        ("console.css", STYLE),
    ];

    #[test]
    fn the_console_loads_nothing_from_outside() {
        // Anything that would make the browser reach another host (a CDN, a web font, an
        // analytics beacon) would break the page offline.
        for (name, text) in FILES {
            for outside in [
                "http://",
                "https://",
                "//cdn",
                "@import",
                "@font-face",
                "url(",
            ] {
                assert!(!text.contains(outside), "{name} holds {outside:?}");
            }
        }
        // The page takes its script and style from this origin's paths only.
        assert!(PAGE.contains(r#"<script src="/console.js" defer></script>"#));
        assert!(PAGE.contains(r#"<link rel="stylesheet" href="/console.css">"#));
    }

    #[test]
    fn the_console_never_writes_markup_from_data() {
        // Data reaches the page as text nodes: any of these would parse it as markup.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!SCRIPT.contains(sink), "console.js uses {sink}");
        }
        // And the CSP forbids inline script, so no handler in the markup would run either.
        for inline in ["onclick=", "onload=", "onsubmit=", "style=", "<script>"] {
            assert!(!PAGE.contains(inline), "index.html holds {inline:?}");
        }
    }

    #[test]
    fn the_token_lives_in_session_storage_and_a_header_only() {
        assert!(SCRIPT.contains("sessionStorage"));
        assert!(SCRIPT.contains("'Authorization'"));
        for leak in ["document.cookie", "localStorage", "credentials: 'include'"] {
            assert!(!SCRIPT.contains(leak), "console.js uses {leak}");
        }
    }

    #[test]
    fn every_console_file_carries_the_security_headers() {
        for (kind, body) in [
            ("text/html", PAGE),
            ("text/javascript", SCRIPT),
            ("text/css", STYLE),
        ] {
            let answer = asset(kind, body);
            assert_eq!(answer.status(), 200, "{kind}");
            let h = answer.headers();
            let get = |name: header::HeaderName| {
                h.get(&name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            assert_eq!(get(header::CONTENT_TYPE), kind);
            assert_eq!(get(header::CONTENT_SECURITY_POLICY), CSP, "{kind}");
            assert_eq!(get(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{kind}");
            assert_eq!(get(header::REFERRER_POLICY), "no-referrer", "{kind}");
            assert_eq!(get(header::X_FRAME_OPTIONS), "DENY", "{kind}");
        }
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
    }
}
