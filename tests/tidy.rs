//! Tidy checks that keep the architecture honest: the domain core imports no I/O, clock or
//! async crate, and every source file opens with a `//!` comment saying what it does.

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
