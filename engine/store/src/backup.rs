//! Copies of the metaverse to keep, and one put back. A backup is consistent as of one moment
//! while runs (the service's included) go on, compacted, checked, and readable by its owner
//! alone; a restore takes the run lock, checks the copy, and keeps the metaverse it replaces.
use idflow_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Copies the metaverse at `db` to `to`, a file that must not exist. The metaverse is opened
/// as it is (never created, migrated or written). SQLite's `VACUUM INTO` reads one snapshot (a
/// read transaction: writers go on meanwhile) and writes it compacted into `to`'s name with
/// `.partial-<pid>` after it, made owner-only before anything is written to it; that is checked
/// ([`check`]), flushed to disk, and only then linked in as `to` (never over a file that
/// appeared meanwhile). A backup that fails, or is killed, leaves no file under `to`'s name.
/// Its size in bytes.
pub fn backup(db: &Path, to: &Path) -> Result<u64> {
    let path = db.display().to_string();
    let named = to.display().to_string();
    let fail = |message: String| Error::Store { path: path.clone(), message, source: None };
    let exists = || fail(format!("cannot back up to {named}: it exists; give a new name (a backup never replaces a file)"));
    interrupted(db)?;
    if db.symlink_metadata().is_err() {
        return Err(fail("there is none yet: nothing to back up (a run makes it)".to_string()));
    }
    if is_own_file(db, to) {
        return Err(fail(format!("cannot back up to {named}: SQLite or idflow keeps a file of this metaverse there; give another name")));
    }
    if to.symlink_metadata().is_ok() {
        return Err(exists());
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| crate::ops::failed(&path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| crate::ops::failed(&path, e))?;
    let version = version_of(&conn, crate::ops::said).map_err(fail)?;
    // Made absolute: SQLite would take a name beginning with "file:" for a URI.
    let partial = partial_of(to).map_err(|e| fail(format!("cannot back up to {named}: {e}")))?;
    let Some(partial_text) = partial.to_str() else {
        return Err(fail(format!("cannot back up to {named}: give a path that is valid UTF-8")));
    };
    new_owner_only(&partial).map_err(|e| fail(format!("cannot back up to {named}: {}: {e}", partial.display())))?;
    let made = conn
        .execute("VACUUM INTO ?1", [partial_text])
        .map_err(|e| fail(format!("backing up to {named}: {}", crate::ops::said(&e))))
        .and_then(|_| check(&partial, version).map_err(|e| fail(format!("the copy {named} does not check: {e}"))))
        .and_then(|()| {
            publish(&partial, to).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => exists(),
                _ => fail(format!("cannot back up to {named}: {e}")),
            })
        });
    // Only what this made: the partial file was created new above.
    let _ = std::fs::remove_file(&partial);
    made?;
    std::fs::metadata(to).map(|m| m.len()).map_err(|e| fail(format!("{named}: {e}")))
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The backup's schema version (an older one is migrated when the metaverse is next opened).
    pub version: i64,
    /// Where the metaverse it replaced went (its `-wal` and `-shm` files beside it, named after
    /// it), if there was one.
    pub kept: Option<PathBuf>,
}

/// Puts the backup `from` in place of the metaverse at `db`, while `lock` (this metaverse's run
/// lock) keeps every other run out. `from` is copied beside the metaverse under a partial name
/// (owner-only, and owned as the metaverse it replaces is), and that copy must check ([`check`])
/// and be of a schema version this idflow knows. Then a mark ([`interrupted`]) keeps every run
/// out until the end; the metaverse, with its `-wal` and `-shm` files (which belong to it, and
/// would be read into the copy), is moved aside under `.replaced-<UTC time>` names, never
/// deleted; the copy is renamed into place and the mark removed. Run again after being cut
/// short, it finishes with the time the mark keeps.
pub fn restore(lock: &crate::RunLock, from: &Path, db: &Path) -> Result<Restored> {
    let path = db.display().to_string();
    let fail = |message: String| Error::Store { path: path.clone(), message, source: None };
    if lock.db() != db {
        return Err(fail(format!("restoring needs this metaverse's run lock, not {}'s", lock.db().display())));
    }
    let named = from.display();
    if is_own_file(db, from) {
        return Err(fail(format!(
            "cannot restore {named}: it is this metaverse or one of its own files; give a copy `idflow backup` made"
        )));
    }
    // Absolute: SQLite would take a name beginning with "file:" for a URI.
    let from_abs = std::path::absolute(from).map_err(|e| fail(format!("cannot restore {named}: {e}")))?;
    let marker = restoring(db);
    let mark = std::fs::read_to_string(&marker).ok();
    let cut_short = mark.is_some();
    let stamp = match mark.as_deref().and_then(|text| text.lines().nth(1)) {
        Some(kept) if !kept.is_empty() => kept.to_string(),
        _ => chrono::Utc::now().format(FILE_STAMP).to_string(),
    };
    let aside = |suffix: &str| PathBuf::from(format!("{}.replaced-{stamp}{suffix}", db.display()));
    let here = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    const FILES: [&str; 3] = ["", "-wal", "-shm"];
    // Nothing moved over what is kept already (a restore run again in the same second).
    for suffix in FILES {
        if here(suffix).symlink_metadata().is_ok() && aside(suffix).symlink_metadata().is_ok() {
            return Err(fail(format!(
                "cannot move {} aside: {} exists; run again in a second",
                here(suffix).display(),
                aside(suffix).display()
            )));
        }
    }
    let partial = partial_of(db).map_err(|e| fail(format!("cannot restore {named}: {e}")))?;
    let copied = new_owner_only(&partial)
        .and_then(|()| {
            let mut out = std::fs::OpenOptions::new().write(true).open(&partial)?;
            std::io::copy(&mut std::fs::File::open(&from_abs)?, &mut out)?;
            out.sync_all()
        })
        .map_err(|e| format!("{e}"))
        .and_then(|()| owned_as(&partial, db))
        .and_then(|()| {
            let c = Connection::open_with_flags(&partial, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| e.to_string())?;
            let version = version_of(&c, |e| e.to_string())?;
            drop(c);
            if !(1..=crate::schema::SCHEMA_VERSION).contains(&version) {
                return Err(format!(
                    "its schema version {version} is not one this idflow knows ({}); use a matching idflow",
                    crate::schema::SCHEMA_VERSION
                ));
            }
            check(&partial, version).map_err(|e| format!("the backup is damaged: {e}"))?;
            Ok(version)
        });
    let version = match copied {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(fail(format!("cannot restore {named}: {e}")));
        }
    };
    // From here until the copy is in place, no run opens the metaverse ([`interrupted`]).
    let dir = folder(db);
    let marked =
        std::fs::write(&marker, format!("{}\n{stamp}\n", from_abs.display())).and_then(|()| flush(&marker)).and_then(|()| flush(dir));
    if let Err(e) = marked {
        let _ = std::fs::remove_file(&partial);
        if !cut_short {
            let _ = std::fs::remove_file(&marker);
        }
        return Err(fail(format!("cannot restore {named}: {}: {e}", marker.display())));
    }
    let unfinished = |what: String| fail(format!("{what}; the restore is not complete: run `idflow restore {named}` again"));
    for suffix in FILES {
        if here(suffix).symlink_metadata().is_err() {
            continue;
        }
        if let Err(e) = std::fs::rename(here(suffix), aside(suffix)) {
            let _ = std::fs::remove_file(&partial);
            return Err(unfinished(format!("cannot move {} aside to {}: {e}", here(suffix).display(), aside(suffix).display())));
        }
    }
    if let Err(e) = std::fs::rename(&partial, db) {
        let _ = std::fs::remove_file(&partial);
        return Err(unfinished(format!("cannot put {named} in place: {e}")));
    }
    let _ = flush(dir);
    std::fs::remove_file(&marker).map_err(|e| fail(format!("restored, but {} stays: {e}; remove it", marker.display())))?;
    let _ = flush(dir);
    let kept = Some(aside("")).filter(|p| p.symlink_metadata().is_ok());
    Ok(Restored { version, kept })
}

/// Gives `p` the owner and group of the metaverse at `db` (else of its folder), so that the
/// service's own user can open a copy an administrator put back; an error saying as whom to
/// run when that is not allowed.
fn owned_as(p: &Path, db: &Path) -> std::result::Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(want) = std::fs::metadata(db).or_else(|_| std::fs::metadata(folder(db))) else { return Ok(()) };
        let have = std::fs::metadata(p).map_err(|e| e.to_string())?;
        if (have.uid(), have.gid()) != (want.uid(), want.gid()) {
            std::os::unix::fs::chown(p, Some(want.uid()), Some(want.gid())).map_err(|e| {
                format!(
                    "cannot give the copy the metaverse's owner (uid {}, gid {}): {e}; run the restore as that user",
                    want.uid(),
                    want.gid()
                )
            })?;
        }
    }
    Ok(())
}

/// How a UTC time is written in a file's name (`20261207T214800Z`): kept files sort by it.
pub const FILE_STAMP: &str = "%Y%m%dT%H%M%SZ";

/// The file that says a restore of the metaverse at `db` is under way (it names the copy).
fn restoring(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}.restoring", db.display()))
}

/// An error when a restore of the metaverse at `db` was cut short (killed, or failed once the
/// metaverse was being moved aside): until it is run again, the metaverse there may be missing
/// or without its log, and a run would start a new one or read a stale one.
pub(crate) fn interrupted(db: &Path) -> Result<()> {
    let marker = restoring(db);
    if marker.symlink_metadata().is_err() {
        return Ok(());
    }
    let from = std::fs::read_to_string(&marker).unwrap_or_default();
    let from = from.trim();
    Err(Error::Store {
        path: db.display().to_string(),
        message: format!(
            "a restore of this metaverse was cut short ({} says from {from:?}): run `idflow restore {from}` again; no run opens the \
             metaverse until it is complete",
            marker.display()
        ),
        source: None,
    })
}

/// The schema version a metaverse database records (an error saying it is none).
fn version_of(conn: &Connection, say: fn(&rusqlite::Error) -> String) -> std::result::Result<i64, String> {
    use rusqlite::OptionalExtension;
    let said = |e: rusqlite::Error| say(&e);
    let has_meta: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_schema WHERE type='table' AND name='meta')", [], |r| r.get(0)).map_err(said)?;
    let v: Option<String> = match has_meta {
        true => conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).optional().map_err(said)?,
        false => None,
    };
    v.and_then(|v| v.parse().ok()).ok_or_else(|| "it is not a metaverse database (it records no schema version)".to_string())
}

/// `to` made absolute, with `.partial-<pid>` after its file name.
fn partial_of(to: &Path) -> std::io::Result<PathBuf> {
    let to = std::path::absolute(to)?;
    let mut name = to.file_name().map(|n| n.to_os_string()).ok_or_else(|| std::io::Error::other("give a file name"))?;
    name.push(format!(".partial-{}", std::process::id()));
    Ok(to.with_file_name(name))
}

/// The folder file `p` is in (`.` for a bare name).
fn folder(p: &Path) -> &Path {
    p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Flushes a file (here: a folder, so that the names made or moved in it are kept).
fn flush(p: &Path) -> std::io::Result<()> {
    std::fs::File::open(p)?.sync_all()
}

/// A new empty file at `p`, readable by its owner alone.
pub(crate) fn new_owner_only(p: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(p).map(drop)
}

/// `partial`, complete and checked, flushed to disk and linked in as `to`: a second name for
/// the same file, so that no file at `to` is ever replaced (a file system without such links:
/// renamed, once `to` is seen free).
fn publish(partial: &Path, to: &Path) -> std::io::Result<()> {
    flush(partial)?;
    match std::fs::hard_link(partial, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) if to.symlink_metadata().is_err() => std::fs::rename(partial, to)?,
        Err(e) => return Err(e),
    }
    // The new name itself kept, as far as the folder can be flushed.
    let _ = flush(folder(to));
    Ok(())
}

/// Whether `to` names a file kept beside the database at `db` (its log, shared memory, journal,
/// or the run lock), by `db`'s own name or, for a link, by its target's: a copy written there,
/// once no run holds it, would be taken for that file.
fn is_own_file(db: &Path, to: &Path) -> bool {
    let dir = |p: &Path| folder(p).canonicalize().ok();
    let Some(to_name) = to.file_name() else { return false };
    let Some(to_dir) = dir(to) else { return false };
    let names = [Some(db.to_path_buf()), db.canonicalize().ok()];
    names.iter().flatten().any(|db| {
        let Some(name) = db.file_name() else { return false };
        let own = ["", "-wal", "-shm", "-journal", ".lock", ".restoring"].iter().any(|s| {
            let mut n = name.to_os_string();
            n.push(s);
            n == to_name
        });
        own && dir(db).as_ref() == Some(&to_dir)
    })
}

/// SQLite's `quick_check` of the database at `p`, opened read-only, and its schema version
/// `version` read back (an empty file checks too).
fn check(p: &Path, version: i64) -> std::result::Result<(), String> {
    let c =
        Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(|e| e.to_string())?;
    let mut st = c.prepare("PRAGMA quick_check").map_err(|e| e.to_string())?;
    let said: Vec<String> = st.query_map([], |r| r.get(0)).and_then(Iterator::collect).map_err(|e| e.to_string())?;
    if !matches!(said.as_slice(), [ok] if ok == "ok") {
        return Err(said.join("; "));
    }
    match version_of(&c, |e| e.to_string())? {
        v if v == version => Ok(()),
        v => Err(format!("its schema version is {v}, not {version}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::{ReadOps, RunLock, Store, WriteOps};

    /// A backup holds what was committed, not what a transaction holds open; it is owner-only,
    /// never replaces a file nor goes onto the metaverse's own, leaves nothing partial behind,
    /// and is put back by a restore that keeps what it replaces.
    #[test]
    fn a_backup_is_a_consistent_owner_only_copy_that_a_restore_puts_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("idflow.db");
        let store = Store::open(&db).expect("open");
        let tx = store.write().expect("write");
        tx.meta_set("k", "committed").expect("set");
        tx.commit().expect("commit");
        let tx = store.write().expect("write");
        tx.meta_set("k2", "open").expect("set");
        // Copied while this transaction is open.
        let to = dir.path().join("copy.db");
        let size = crate::backup(&db, &to).expect("backup");
        drop(tx);
        assert!(size > 0);
        assert_eq!(std::fs::metadata(&to).expect("made").permissions().mode() & 0o777, 0o600);
        let copy = Store::open(&to).expect("opens");
        let r = copy.read().expect("read");
        assert_eq!(r.meta_get("k").expect("k").as_deref(), Some("committed"));
        assert_eq!(r.meta_get("k2").expect("k2"), None, "what was not committed is not in it");
        drop(r);
        drop(copy);
        let text = crate::backup(&db, &to).expect_err("refused").to_string();
        assert!(text.contains("it exists; give a new name"), "{text}");
        for own in ["idflow.db-wal", "./idflow.db-shm", "idflow.db-journal", "idflow.db.lock"] {
            let at = dir.path().join(own);
            let was = at.exists();
            let text = crate::backup(&db, &at).expect_err("refused").to_string();
            assert!(text.contains("keeps a file of this metaverse there"), "{own}: {text}");
            assert_eq!(at.exists(), was, "{own}: nothing made or removed");
        }
        let not_one = dir.path().join("not-one.db");
        rusqlite::Connection::open(&not_one).and_then(|c| c.execute_batch("CREATE TABLE t(a)")).expect("made");
        let text = crate::backup(&not_one, &dir.path().join("x.db")).expect_err("refused").to_string();
        assert!(text.contains("not a metaverse database"), "{text}");
        let partial: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|f| f.ok().map(|f| f.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.contains(".partial-"))
            .collect();
        assert!(partial.is_empty(), "left behind: {partial:?}");

        // Changed since, then put back: what the backup holds, the replaced one kept aside with
        // its log (the store is left open, so its -wal and -shm files are there).
        let tx = store.write().expect("write");
        tx.meta_set("k", "changed since").expect("set");
        tx.commit().expect("commit");
        std::mem::forget(store);
        assert!(dir.path().join("idflow.db-wal").exists());
        let lock = RunLock::take(&db, "restore").expect("lock");
        for own in ["idflow.db", "idflow.db-wal"] {
            let text = crate::restore(&lock, &dir.path().join(own), &db).expect_err("refused").to_string();
            assert!(text.contains("it is this metaverse or one of its own files"), "{own}: {text}");
        }
        let text = crate::restore(&lock, &not_one, &db).expect_err("refused").to_string();
        assert!(text.contains("not a metaverse database"), "{text}");
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).expect("write");
        let text = crate::restore(&lock, &garbage, &db).expect_err("refused").to_string();
        assert!(text.contains("cannot restore") && text.contains("not a database") && !text.contains("idflow restore FILE"), "{text}");
        assert!(!dir.path().join("idflow.db.restoring").exists(), "a refused restore leaves no mark");
        // Cut short (here: its mark left as a kill would leave it): no run opens the metaverse.
        std::fs::write(dir.path().join("idflow.db.restoring"), format!("{}\n20260101T000000Z\n", to.display())).expect("mark");
        let text = Store::open(&db).err().expect("refused").to_string();
        assert!(text.contains("a restore of this metaverse was cut short") && text.contains("run `idflow restore "), "{text}");
        let text = crate::backup(&db, &dir.path().join("during.db")).expect_err("refused").to_string();
        assert!(text.contains("a restore of this metaverse was cut short"), "{text}");
        let done = crate::restore(&lock, &to, &db).expect("restore");
        assert!(!dir.path().join("idflow.db.restoring").exists(), "complete: the mark is gone");
        let kept = done.kept.expect("the replaced one kept");
        assert_eq!(kept, dir.path().join("idflow.db.replaced-20260101T000000Z"), "the time the mark kept");
        assert!(dir.path().join("idflow.db.replaced-20260101T000000Z-wal").exists(), "its log beside it");
        assert!(!dir.path().join("idflow.db-wal").exists(), "no log of another database beside the copy");
        assert_eq!(std::fs::metadata(&db).expect("there").permissions().mode() & 0o777, 0o600);
        // Run again at once: refused before anything is moved (or done, in another second).
        if let Err(e) = crate::restore(&lock, &to, &db) {
            assert!(e.to_string().contains("exists; run again in a second"), "{e}");
            assert!(!dir.path().join("idflow.db.restoring").exists(), "refused: no mark");
        }
        drop(lock);
        let store = Store::open(&db).expect("opens");
        assert_eq!(store.read().expect("read").meta_get("k").expect("k").as_deref(), Some("committed"));
        drop(store);
        std::fs::rename(dir.path().join("idflow.db.replaced-20260101T000000Z-wal"), dir.path().join("kept.db-wal")).expect("log");
        std::fs::rename(&kept, dir.path().join("kept.db")).expect("kept");
        let old = Store::open(&dir.path().join("kept.db")).expect("the replaced one opens");
        assert_eq!(old.read().expect("read").meta_get("k").expect("k").as_deref(), Some("changed since"), "with its log");
    }
}
