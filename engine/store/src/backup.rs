//! A copy of the metaverse to keep: consistent as of one moment while runs (the service's
//! included) go on, compacted, checked, and readable by its owner alone.
use idflow_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Copies the database of `conn` (named `path` in errors) to `to`, a file that must not exist,
/// made owner-only before anything is written to it. SQLite's `VACUUM INTO` reads one snapshot
/// (a read transaction: writers go on meanwhile) and writes it compacted; the copy is then
/// opened read-only and checked (`quick_check`). A copy that fails or does not check is
/// removed. Its size in bytes.
pub(crate) fn copy_to(conn: &Connection, path: &str, to: &Path) -> Result<u64> {
    let named = to.display().to_string();
    let fail = |message: String| Error::Store { path: path.to_string(), message, source: None };
    let Some(to_text) = to.to_str() else {
        return Err(fail(format!("cannot back up to {named}: give a path that is valid UTF-8")));
    };
    if is_own_file(Path::new(path), to) {
        return Err(fail(format!("cannot back up to {named}: SQLite or idflow keeps a file of this metaverse there; give another name")));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(to).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            fail(format!("cannot back up to {named}: it exists; give a new name (a backup never replaces a file)"))
        }
        _ => fail(format!("cannot back up to {named}: {e}")),
    })?;
    let made = conn
        .execute("VACUUM INTO ?1", [to_text])
        .map_err(|e| fail(format!("backing up to {named}: {}", crate::ops::said(&e))))
        .and_then(|_| check(to).map_err(|e| fail(format!("the copy {named} does not check: {e}"))));
    if let Err(e) = made {
        // Only what this made: the file was created new above.
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    std::fs::metadata(to).map(|m| m.len()).map_err(|e| fail(format!("{named}: {e}")))
}

/// Whether `to` names a file kept beside the database at `db` (its log, shared memory, journal,
/// or the run lock): a copy written there, once no run holds it, would be taken for that file.
fn is_own_file(db: &Path, to: &Path) -> bool {
    let dir = |p: &Path| p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).canonicalize().ok();
    let (Some(name), Some(to_name)) = (db.file_name(), to.file_name()) else { return false };
    let own = ["", "-wal", "-shm", "-journal", ".lock"].iter().any(|s| {
        let mut n = name.to_os_string();
        n.push(s);
        n == to_name
    });
    own && dir(db).is_some() && dir(db) == dir(to)
}

/// SQLite's `quick_check` of the database at `to`, opened read-only.
fn check(to: &Path) -> std::result::Result<(), String> {
    let c =
        Connection::open_with_flags(to, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(|e| e.to_string())?;
    let mut st = c.prepare("PRAGMA quick_check").map_err(|e| e.to_string())?;
    let said: Vec<String> = st.query_map([], |r| r.get(0)).and_then(Iterator::collect).map_err(|e| e.to_string())?;
    match said.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(said.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use crate::{ReadOps, Store, WriteOps};

    /// A backup holds what was committed, not what a transaction holds open; it is owner-only,
    /// never replaces a file, and opens as a metaverse.
    #[test]
    fn a_backup_is_a_consistent_owner_only_copy_that_replaces_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("idflow.db")).expect("open");
        let tx = store.write().expect("write");
        tx.meta_set("k", "committed").expect("set");
        tx.commit().expect("commit");
        let tx = store.write().expect("write");
        tx.meta_set("k2", "open").expect("set");
        // Another connection copies while this transaction is open.
        let other = Store::open(&dir.path().join("idflow.db")).expect("open again");
        let to = dir.path().join("copy.db");
        let size = other.backup_to(&to).expect("backup");
        drop(tx);
        assert!(size > 0);
        assert_eq!(std::fs::metadata(&to).expect("made").permissions().mode() & 0o777, 0o600);
        let copy = Store::open(&to).expect("opens");
        let r = copy.read().expect("read");
        assert_eq!(r.meta_get("k").expect("k").as_deref(), Some("committed"));
        assert_eq!(r.meta_get("k2").expect("k2"), None, "what was not committed is not in it");
        drop(r);
        let text = other.backup_to(&to).expect_err("refused").to_string();
        assert!(text.contains("it exists; give a new name"), "{text}");
        assert!(Store::open(&to).is_ok(), "the copy is left as it was");
        for own in ["idflow.db-wal", "./idflow.db-shm", "idflow.db-journal", "idflow.db.lock"] {
            let at = dir.path().join(own);
            let _ = std::fs::remove_file(&at);
            let text = other.backup_to(&at).expect_err("refused").to_string();
            assert!(text.contains("keeps a file of this metaverse there"), "{own}: {text}");
            assert!(!at.exists(), "{own}: nothing made");
        }
        assert!(other.backup_to(&dir.path().join("idflow.db.bak")).is_ok(), "a name of its own beside it");
    }
}
