//! One writer per metaverse: an exclusive lock on `<database>.lock`, held for as long as the
//! run that took it. The operating system releases it when that process ends, however it ends
//! (`kill -9` included), so a lock is never stale. The file says who holds it.
use idflow_core::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub struct RunLock {
    file: File,
    db: PathBuf,
}

impl RunLock {
    /// Takes the lock of the metaverse at `db`, describing the holder as `what` (the verb);
    /// refused, naming the holder, when another run has it.
    pub fn take(db: &Path, what: &str) -> Result<RunLock> {
        let path = PathBuf::from(format!("{}.lock", db.display()));
        crate::folder_of(&path).map_err(|e| Error::io(&path, "cannot create its folder", e))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(|e| Error::io(&path, "cannot open the run lock", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "another idflow run".to_string() } else { holder.to_string() };
                return Err(Error::Refused(format!(
                    "the metaverse {} is in use: {holder} holds it. One run at a time: wait for it to end, or stop it",
                    db.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, "cannot lock", e)),
        }
        let holder = format!("idflow {what} (pid {}, started {})", std::process::id(), crate::history::now());
        let written =
            file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(holder.as_bytes())).and_then(|()| file.flush());
        written.map_err(|e| Error::io(&path, "cannot write the run lock", e))?;
        Ok(RunLock { file, db: db.to_path_buf() })
    }

    /// [`RunLock::take`] for this process's run, described by its command line (the verb and
    /// its arguments).
    pub fn take_for_this_run(db: &Path) -> Result<RunLock> {
        let what: Vec<String> = std::env::args().skip(1).collect();
        RunLock::take(db, &what.join(" "))
    }

    /// The metaverse this lock is for.
    pub fn db(&self) -> &Path {
        &self.db
    }
}

/// The lock file stays (emptied) for the next run; the lock itself goes with the file handle.
impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
