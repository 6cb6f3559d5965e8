//! The house rules of the crates (README, "Architecture"), checked on the source tree:
//! dependencies point down only, SQL lives in the store alone, the engine names no database,
//! directory, HTTP or terminal library, and no code outside the connectors matches on a
//! connector kind.
use crate::common::repo;
use std::path::{Path, PathBuf};

/// Each crate's folder, and the idflow crates it may depend on.
const LAYERS: &[(&str, &[&str])] = &[
    ("engine/core", &[]),
    ("stdlib", &["idflow-core"]),
    ("engine/store", &["idflow-core"]),
    ("engine/msrpc", &["idflow-core"]),
    ("engine/policy", &["idflow-core", "idflow-stdlib"]),
    ("engine/connectors", &["idflow-core", "idflow-msrpc"]),
    ("engine/sync", &["idflow-core", "idflow-store", "idflow-policy", "idflow-stdlib"]),
    ("engine/service", &["idflow-core", "idflow-store", "idflow-engine"]),
    (
        "engine/cli",
        &[
            "idflow-core",
            "idflow-store",
            "idflow-policy",
            "idflow-msrpc",
            "idflow-connectors",
            "idflow-engine",
            "idflow-service",
            "idflow-stdlib",
        ],
    ),
];

/// The names a crate's `[dependencies]` (not dev-dependencies) list.
fn dependencies(dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(dir).join("Cargo.toml")).expect("Cargo.toml");
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == "[dependencies]";
            continue;
        }
        if inside && !l.is_empty() && !l.starts_with('#') {
            let name = l.split(['=', '.', ' ']).next().unwrap_or_default().trim();
            out.push(name.to_string());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every Rust source file of a crate.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&repo().join(dir).join("src"), &mut files);
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).expect("source"))).collect()
}

#[test]
fn dependencies_point_down_only() {
    for (dir, allowed) in LAYERS {
        for d in dependencies(dir).into_iter().filter(|d| d.starts_with("idflow")) {
            assert!(allowed.contains(&d.as_str()), "{dir} depends on {d}; it may depend on {allowed:?} only");
        }
    }
}

#[test]
fn sql_lives_in_the_store_alone() {
    for (dir, _) in LAYERS.iter().filter(|(d, _)| *d != "engine/store") {
        for (file, text) in sources(dir) {
            for kw in ["SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "CREATE TABLE", "PRAGMA "] {
                assert!(!text.contains(&format!("\"{kw}")), "{}: SQL ({kw:?}) outside engine/store", file.display());
            }
        }
    }
    for (_, text) in sources("engine/sync").iter().chain(sources("engine/cli").iter()) {
        assert!(!text.contains("rusqlite"), "the engine and the CLI reach the metaverse through idflow-store");
    }
}

#[test]
fn the_engine_names_no_database_directory_http_or_terminal_library() {
    let deps = dependencies("engine/sync");
    for lib in ["rusqlite", "ldap3", "reqwest", "indicatif", "tokio"] {
        assert!(!deps.iter().any(|d| d == lib), "idflow-engine depends on {lib}");
        for (file, text) in sources("engine/sync") {
            assert!(!text.contains(&format!("{lib}::")), "{} names {lib}", file.display());
        }
    }
}

#[test]
fn only_the_registry_matches_on_connector_kinds() {
    let kinds = ["ldif", "file", "ldap", "scim"];
    for (dir, _) in LAYERS.iter().filter(|(d, _)| *d != "engine/connectors") {
        for (file, text) in sources(dir) {
            for k in kinds {
                for pattern in [format!("== \"{k}\""), format!("!= \"{k}\""), format!("\"{k}\" =>")] {
                    assert!(!text.contains(&pattern), "{}: matches on the connector kind {k:?}", file.display());
                }
            }
        }
    }
}
