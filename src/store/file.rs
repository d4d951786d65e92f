//! The file backend: appends line protocol to a local file — the demo's store when no
//! InfluxDB is given.
//!
//! Fed by the store with line-protocol bodies; feeds one file, synced after each append so
//! that a batch counts as written only once it is on disk. Every failure is a retry: a full or
//! unwritable disk says nothing about the lines.

use crate::store::backend::{Backend, WriteError, WriteFuture};
use bytes::Bytes;
use std::path::PathBuf;

/// Appends line protocol to a file.
pub struct FileWriter {
    path: PathBuf,
}

impl FileWriter {
    pub fn new(path: PathBuf) -> FileWriter {
        FileWriter { path }
    }

    async fn append(&self, body: Bytes) -> Result<(), WriteError> {
        use tokio::io::AsyncWriteExt;
        let result = async {
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await?;
            f.write_all(&body).await?;
            f.sync_data().await
        }
        .await;
        result.map_err(|e| WriteError::Retry {
            reason: format!("cannot append to {}: {e}", self.path.display()),
            after: None,
        })
    }
}

impl Backend for FileWriter {
    fn write(&self, body: Bytes) -> WriteFuture<'_> {
        Box::pin(self.append(body))
    }

    fn describe(&self) -> String {
        format!("line-protocol file {}", self.path.display())
    }
}
