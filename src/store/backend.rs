//! The store backend seam: where a batch of line protocol goes once the store has it in
//! custody. The one place that builds a backend from config is [`crate::store::build_backend`].
//!
//! Fed by the custody code in [`crate::store`] with one body per attempt (a batch, a half of a
//! rejected batch, or a spooled batch); feeds a database or a file. A backend writes and sorts
//! its failures into a [`WriteError`]; what happens next (spool, split, dead-letter, back off)
//! is the store's business, so a backend never retries or spools by itself.
//!
//! Adding a backend: a file or folder beside [`influx`](crate::store::influx) and
//! [`file`](crate::store::file) implementing [`Backend`], its config section (a `config.rs`
//! beside it, like [`influx::config`](crate::store::influx::config), called and listed in
//! `config`), and one arm in [`crate::store::build_backend`].
//!
//! The trait returns a boxed future rather than using `async fn`: the store holds the backend
//! as `Box<dyn Backend>`, and an `async fn` in a trait cannot be called through `dyn`. The
//! `async-trait` crate would generate the same boxing behind a macro; for one method the
//! hand-written form is as short and needs no new dependency. The box costs one allocation
//! per write of a whole batch, which is noise beside the write itself.

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Why a write did not land.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    /// Try the same body again later (after `after` when the server said so).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The server refused the content; retrying it unchanged cannot succeed.
    Reject { status: u16, message: String },
}

/// What [`Backend::write`] returns: a future that borrows the backend.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send + 'a>>;

/// Where readings are stored.
pub trait Backend: Send + Sync {
    /// Writes `body`: whole lines of line protocol, each ending in a newline, timestamps in
    /// milliseconds. `Ok` means every line landed; a [`WriteError::Reject`] means the content
    /// was refused (the store splits the body to find the refused lines); a
    /// [`WriteError::Retry`] means nothing can be assumed to have landed, and the same body
    /// will be written again (rewriting a point is harmless: same series and time overwrite).
    fn write(&self, body: Bytes) -> WriteFuture<'_>;

    /// Where the lines go, for the log: no secrets.
    fn describe(&self) -> String;
}
