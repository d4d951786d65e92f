//! Tidy checks that keep the architecture honest: the domain core imports no I/O, clock or
//! async crate; every source file opens with a `//!` comment saying what it does; and the
//! module graph (read from each file's `crate::` paths) keeps its shape — the screen imports
//! only the domain, the store knows no input source, and no two modules import each other
//! round a cycle.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn domain_core_does_no_io() {
    let forbidden = [
        "tokio",
        "std::fs",
        "std::net",
        "std::io",
        "std::process",
        "reqwest",
        "rumqttc",
        "lettre",
        "influxdb2",
        "tracing",
        "serde",
        "Utc::now",
        "SystemTime",
        "Instant::now",
        "std::thread",
        "std::env",
    ];
    let files = rust_files(&root().join("src/domain"));
    assert!(files.len() >= 6, "domain files found: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses {word}: the domain core must stay pure",
                file.display()
            );
        }
    }
}

#[test]
fn every_module_says_what_it_does() {
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        assert!(
            first.starts_with("//!"),
            "{} must open with a //! comment",
            file.display()
        );
    }
}

/// The top-level module a source file belongs to (`src/store/influx.rs` → `store`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(root().join("src")).unwrap_or(file);
    let first = rel.components().next().map_or(String::new(), |c| {
        c.as_os_str().to_string_lossy().into_owned()
    });
    first.trim_end_matches(".rs").to_string()
}

/// The crate's top-level modules each file names through `crate::<module>`.
fn crate_imports(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `riverwatch::crate::` cannot occur; a preceding identifier character means another
        // path (`$crate::`), which this crate does not write.
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    // `use crate::{a, b::c}` groups.
    for (i, _) in text.match_indices("crate::{") {
        let rest = &text[i + "crate::{".len()..];
        let group = rest.split('}').next().unwrap_or("");
        for part in group.split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Top-level module → the top-level modules it imports (itself excluded), from `src/`.
fn module_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for file in rust_files(&root().join("src")) {
        let module = module_of(&file);
        if module == "lib" || module == "main" {
            continue;
        }
        // Code only: a doc comment may name a module without depending on it.
        let text: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(crate_imports(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

#[test]
fn the_screen_imports_only_the_domain() {
    let graph = module_graph();
    let screen = graph.get("screen").expect("src/screen.rs exists");
    assert!(
        screen.iter().all(|m| m == "domain"),
        "the screen runs the domain rules and nothing else; it imports {screen:?}"
    );
}

#[test]
fn the_store_knows_no_input_source() {
    let graph = module_graph();
    let store = graph.get("store").expect("src/store exists");
    assert!(
        !store.contains("ingest"),
        "the store carries opaque receipts, not a transport's types; it imports {store:?}"
    );
}

#[test]
fn the_modules_import_each_other_without_cycles() {
    let graph = module_graph();
    // Depth-first search for a back edge; the path in the message names the cycle.
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| n == node) {
            panic!("import cycle: {} → {node}", path[at..].join(" → "));
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut done = Default::default();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
    assert!(graph.len() >= 10, "modules found: {:?}", graph.keys());
}

/// Every outbound HTTP client is built by `outbound::client_builder`, so none offers HTTP/2:
/// the h2 0.3 that reqwest 0.11 compiles (RUSTSEC-2026-0258) stays unreachable.
#[test]
fn every_http_client_comes_from_the_one_builder() {
    let mut found = Vec::new();
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let compact: String = text.split_whitespace().collect();
        for pattern in [
            "reqwest::Client::builder(",
            "reqwest::Client::new(",
            "ClientBuilder::new(",
        ] {
            if compact.contains(pattern) && !file.ends_with("src/outbound.rs") {
                found.push(format!("{}: {pattern}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "HTTP clients built elsewhere: {found:#?}");
    let builder = std::fs::read_to_string(root().join("src/outbound.rs")).unwrap();
    assert!(builder.contains(".http1_only()"), "{builder}");
}

/// The advisories knowingly built with are the same in `.cargo/deny.toml` (with reasons) and
/// `.cargo/audit.toml` (which `cargo audit` reads), and each has its reason.
#[test]
fn ignored_advisories_are_listed_alike_with_reasons() {
    let read = |name: &str| -> toml::Value {
        let text = std::fs::read_to_string(root().join(".cargo").join(name)).unwrap();
        toml::from_str(&text).unwrap()
    };
    let deny = read("deny.toml");
    let audit = read("audit.toml");
    let mut from_deny: Vec<String> = Vec::new();
    for entry in deny["advisories"]["ignore"].as_array().unwrap() {
        let id = entry["id"].as_str().unwrap();
        let reason = entry["reason"].as_str().unwrap_or("");
        assert!(reason.len() > 20, "{id} needs a reason in deny.toml");
        from_deny.push(id.to_string());
    }
    let mut from_audit: Vec<String> = audit["advisories"]["ignore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    from_deny.sort();
    from_audit.sort();
    assert_eq!(from_deny, from_audit);
    assert!(!from_deny.is_empty());
}
