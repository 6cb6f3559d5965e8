//! A file's stamp: its device, inode, size, and times of last change (content and metadata).
//! A delta import with no delta file to apply only asks whether the main file changed since the
//! last import; a stamp that is the same answers that without reading it (hashing a file of a
//! million entries took 0.7 to 1 s of every plan and delta import at 1,000,000 people).
//!
//! The change time (ctime) cannot be set by any tool: writing, truncating, renaming over or
//! touching the file moves it. One caveat remains, the one git calls a racy clean file: a write
//! within the same tick of the file system's clock as the one stamped leaves the stamp as it
//! was. So a file is stamped only once its last change is [`SETTLED`] old; one changed more
//! recently is read and hashed every time until it is.
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How old a file's last change must be for its stamp to stand for its content (far beyond any
/// file system's timestamp granularity).
const SETTLED: Duration = Duration::from_secs(10);

/// `path`'s stamp when its last change is settled by now; `None` when it is not, when it cannot
/// be read, or off Unix.
pub(crate) fn of(path: &Path) -> Option<String> {
    at(path, SystemTime::now())
}

#[cfg(unix)]
fn at(path: &Path, now: SystemTime) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let changed = SystemTime::UNIX_EPOCH.checked_add(Duration::new(u64::try_from(m.ctime()).ok()?, u32::try_from(m.ctime_nsec()).ok()?))?;
    if now.duration_since(changed).ok()? < SETTLED {
        return None;
    }
    Some(format!("{}.{}.{}.{}.{}.{}.{}", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
}

#[cfg(not(unix))]
fn at(_path: &Path, _now: SystemTime) -> Option<String> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::{at, SETTLED};
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_file_is_stamped_once_settled_and_any_write_or_replacement_changes_its_stamp() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("corp.ldif");
        std::fs::write(&p, "dn: o=corp\n").expect("written");
        let later = || SystemTime::now() + SETTLED + Duration::from_secs(1);
        assert_eq!(at(&p, SystemTime::now()), None, "changed just now: not stamped");
        let first = at(&p, later()).expect("stamped");
        assert_eq!(at(&p, later()), Some(first.clone()), "the same file, the same stamp");
        // The same size and content, written again: the change time moves.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&p, "dn: o=corp\n").expect("rewritten");
        let rewritten = at(&p, later()).expect("stamped");
        assert_ne!(rewritten, first);
        // Its times set back to what they were (as `touch -r` or `rsync -t` would): still moves.
        let old = std::fs::File::options().write(true).open(&p).expect("open");
        old.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)).expect("mtime");
        assert_ne!(at(&p, later()), Some(rewritten.clone()));
        // Replaced by another file of the same size.
        let other = dir.path().join("other.ldif");
        std::fs::write(&other, "dn: o=corq\n").expect("written");
        std::fs::rename(&other, &p).expect("renamed");
        assert_ne!(at(&p, later()), Some(rewritten));
        assert_eq!(at(&dir.path().join("gone.ldif"), later()), None);
    }
}
