//! Scheduled backups (`[service] backup_dir`): the metaverse copied as `idflow backup` copies it,
//! to `<its name>-<UTC time>.db` (`idflow-20261208T003000Z.db` for `idflow.db`) in a folder only
//! its owner reads, every `backup_every`, the newest `backup_keep` kept. The names carry the
//! time, so a restarted service knows when the last one was taken; nothing else in the folder
//! is touched, except what a backup killed midway left (`.partial-<pid>` of a process that is
//! gone, untouched for ten minutes). The folder is one metaverse's ([`crate::backup_owner`]).
use crate::backup_owner::{self, Owner};
use chrono::{DateTime, NaiveDateTime, Utc};
use idflow_core::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SUFFIX: &str = ".db";
use idflow_store::FILE_STAMP as STAMP;

/// Where and how often, as `[service]` says it (the folder relative to the configuration's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub dir: PathBuf,
    /// What every backup's name begins with: the metaverse's name and a dash.
    pub prefix: String,
    pub every: Duration,
    pub keep: usize,
    /// The metaverse backed up.
    pub metaverse: PathBuf,
}

/// A backup taken: its file and size, how many older ones went, and why any that should have
/// gone is still there.
#[derive(Debug)]
pub(crate) struct Taken {
    pub file: PathBuf,
    pub bytes: u64,
    pub removed: usize,
    pub unremoved: Option<String>,
}

impl Plan {
    /// `[service]`'s backup settings, or none; `config` is the configuration file (named in
    /// errors), `dir` its folder, `metaverse` the database backed up.
    pub(crate) fn of(s: &idflow_engine::ServiceSection, config: &Path, dir: &Path, metaverse: &Path) -> Result<Option<Plan>> {
        let Some(d) = &s.backup_dir else { return Ok(None) };
        let bad = |m: String| Error::Config(format!("{}: [service] {m}", config.display()));
        if d.trim().is_empty() {
            return Err(bad("backup_dir is empty: name a folder, or leave it out for no scheduled backups".into()));
        }
        if s.backup_keep == 0 {
            return Err(bad("backup_keep = 0 would remove every backup it takes: keep 1 or more".into()));
        }
        if s.backup_every < Duration::from_secs(1) {
            return Err(bad("backup_every is under a second: write it like \"1d\" or \"6h\"".into()));
        }
        let stem = metaverse.file_stem().and_then(|s| s.to_str()).unwrap_or("idflow");
        Ok(Some(Plan {
            dir: dir.join(d),
            prefix: format!("{stem}-"),
            every: s.backup_every,
            keep: s.backup_keep,
            metaverse: metaverse.to_path_buf(),
        }))
    }

    /// How long from now the next backup is due: `every` after `newest`, the time of the newest
    /// in the folder (at most `every`, should its name be ahead of the clock), at once when
    /// there is none.
    fn due_in(&self, newest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
        match newest {
            Some(at) => (now - at).to_std().map_or(self.every, |since| self.every.saturating_sub(since)),
            None => Duration::ZERO,
        }
    }

    /// The newest backup in the folder, and its time.
    fn newest(&self) -> Option<(DateTime<Utc>, PathBuf)> {
        self.kept().ok()?.into_iter().next()
    }

    /// Takes one now, then removes the oldest beyond `keep` (only once this one is in place).
    pub(crate) fn take(&self) -> Result<Taken> {
        let metaverse = &self.metaverse;
        owner_only_dir(&self.dir)?;
        self.claim()?;
        self.clear_partials();
        let file = self.dir.join(format!("{}{}{SUFFIX}", self.prefix, Utc::now().format(STAMP)));
        let bytes = idflow_store::backup(metaverse, &file)?;
        let (mut removed, mut failed) = (0, Vec::new());
        // Never the one just taken, even should another name be ahead of the clock.
        let older = self.listed().unwrap_or_default().into_iter().filter(|(_, f)| *f != file);
        for (_, old) in older.skip(self.keep - 1) {
            match std::fs::remove_file(&old) {
                Ok(()) => removed += 1,
                Err(e) => failed.push(format!("{}: {e}", old.display())),
            }
        }
        // Said until a later backup removes them: a folder that only grows fills the disk.
        let unremoved = (!failed.is_empty())
            .then(|| format!("{} older backup(s) beyond backup_keep could not be removed ({})", failed.len(), failed.join("; ")));
        Ok(Taken { file, bytes, removed, unremoved })
    }

    /// The folder's backups are this metaverse's alone ([`crate::backup_owner`]): the first
    /// backup into a folder says so there; a folder another metaverse's file names is refused
    /// before anything in it is touched.
    fn claim(&self) -> Result<()> {
        let mine = std::fs::canonicalize(&self.metaverse).map_err(|e| Error::io(&self.metaverse, "cannot back up", e))?;
        let file = self.owner_file();
        // Twice at most: another process may write the file between the look and the write.
        for _ in 0..2 {
            match backup_owner::of(&file, Some(&mine)) {
                Owner::Mine => return Ok(()),
                Owner::Other(who) => {
                    let m = format!(
                        "it holds the backups of {who} (says {}): give each metaverse a backup folder of its own \
                         ([service] backup_dir), or, if that metaverse moved here, remove that file",
                        file.display()
                    );
                    return Err(Error::io(&self.dir, "cannot back up into", std::io::Error::other(m)));
                }
                Owner::Unreadable(e) => return Err(Error::io(&file, "cannot read", e)),
                Owner::Nobody => {
                    let held = self.listed().map(|k| k.len()).unwrap_or_default();
                    if backup_owner::write(&file, &mine).map_err(|e| Error::io(&file, "cannot write", e))? {
                        if held > 0 {
                            tracing::warn!(
                                folder = %self.dir.display(),
                                "the backup folder said whose it is nowhere yet; its {held} backup(s) named as this metaverse's are taken as its own (retention may remove them)"
                            );
                        }
                        return Ok(());
                    }
                }
            }
        }
        Err(Error::io(&file, "cannot write", std::io::Error::other("another process writes it at the same time: try again")))
    }

    /// The file in the folder naming whose backups it holds.
    fn owner_file(&self) -> PathBuf {
        self.dir.join(format!("{}backups-of", self.prefix))
    }

    /// Whether the folder's backups are this metaverse's: its file names this one, or there is
    /// none yet (another metaverse's, or ones a file that cannot be read names, are neither
    /// counted nor said to be this one's).
    fn ours(&self) -> bool {
        let mine = std::fs::canonicalize(&self.metaverse).ok();
        matches!(backup_owner::of(&self.owner_file(), mine.as_deref()), Owner::Mine | Owner::Nobody)
    }

    /// The backups in the folder, newest first (none when they are another metaverse's).
    fn kept(&self) -> Result<Vec<(DateTime<Utc>, PathBuf)>> {
        if !self.ours() {
            return Ok(Vec::new());
        }
        self.listed()
    }

    /// The files in the folder named as this metaverse's backups, newest first, whoever's the
    /// folder is ([`Plan::kept`] asks that first; a backup that claimed it need not ask again).
    fn listed(&self) -> Result<Vec<(DateTime<Utc>, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, "cannot read the backup folder", e)),
        };
        let mut out: Vec<(DateTime<Utc>, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let at = self.stamp_of(name.to_str()?)?;
                e.file_type().ok().filter(|t| t.is_file()).map(|_| (at, e.path()))
            })
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(out)
    }

    /// Removes what backups killed midway left: `idflow-<time>.db.partial-<pid>` of a process
    /// that is gone (or of this one: the service takes one backup at a time), untouched for ten
    /// minutes (a backup under way writes its copy all the time; a process in another PID
    /// namespace is not seen).
    fn clear_partials(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let Some((file, pid)) = name.to_str().and_then(|n| n.rsplit_once(".partial-")) else { continue };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            let alive = pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists();
            let idle = e.metadata().ok().and_then(|m| m.modified().ok()?.elapsed().ok()).is_some_and(|d| d > PARTIAL_IDLE);
            if self.stamp_of(file).is_some() && !alive && idle {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// The time in a backup's name (`idflow-20261208T003000Z.db`), or None for any other name.
    fn stamp_of(&self, name: &str) -> Option<DateTime<Utc>> {
        let stamp = name.strip_prefix(&self.prefix)?.strip_suffix(SUFFIX)?;
        NaiveDateTime::parse_from_str(stamp, STAMP).ok().map(|t| t.and_utc())
    }
}

/// A partial copy untouched this long is no backup's under way.
const PARTIAL_IDLE: Duration = Duration::from_secs(10 * 60);

/// A failed backup is tried again this long after (or after `backup_every`, if shorter).
const RETRY: Duration = Duration::from_secs(10 * 60);

/// When the next backup is due by `plan` (the newest in its folder), said in the status too;
/// none without a plan.
pub(crate) fn scheduled(status: &std::sync::Mutex<crate::status::Status>, plan: Option<&Plan>) -> Option<tokio::time::Instant> {
    let newest = plan.and_then(Plan::newest);
    let due = plan.map(|p| p.due_in(newest.as_ref().map(|n| n.0), Utc::now()));
    show(status, plan, due.unwrap_or_default(), newest);
    due.map(|d| tokio::time::Instant::now() + d)
}

/// Says in the status how backups are scheduled (`next_in`: the next is due that long from
/// now), keeping what it says of the last one; `newest`, the newest in the folder, is said to
/// be the last when the status says none (this service took none yet).
fn show(
    status: &std::sync::Mutex<crate::status::Status>,
    plan: Option<&Plan>,
    next_in: Duration,
    newest: Option<(DateTime<Utc>, PathBuf)>,
) {
    let Ok(mut s) = status.lock() else { return };
    s.backup = plan.map(|p| {
        let dir = p.dir.display().to_string();
        // What was said of another folder is not said of this one.
        let before = s.backup.take().filter(|b| b.dir == dir).unwrap_or_default();
        let mut b = crate::status::BackupStatus { dir, next: Some(crate::status::after(next_in)), ..before };
        if let (None, Some((at, file))) = (&b.last, newest) {
            b.last = Some(crate::status::shown(at));
            b.last_bytes = std::fs::metadata(&file).ok().map(|m| m.len());
            b.last_file = Some(file.display().to_string());
        }
        b
    });
}

/// Says in the status that a backup is being taken (since now), in place of when it was due.
pub(crate) fn begun(status: &std::sync::Mutex<crate::status::Status>) {
    if let Some(b) = status.lock().ok().as_mut().and_then(|s| s.backup.as_mut()) {
        b.running = Some(crate::status::now());
        b.next = None;
    }
}

/// Records how a backup ended (logged, and in the status), and returns when the next is due
/// from now.
pub(crate) fn ended(status: &std::sync::Mutex<crate::status::Status>, plan: &Plan, r: std::result::Result<Taken, String>) -> Duration {
    let next_in = match &r {
        Ok(_) => plan.every,
        Err(_) => plan.every.min(RETRY),
    };
    match &r {
        Ok(t) => {
            tracing::info!(file = %t.file.display(), bytes = t.bytes, removed = t.removed, "metaverse backed up");
            if let Some(u) = &t.unremoved {
                tracing::warn!("{u}");
            }
        }
        Err(e) => tracing::error!(error = %e, retry_in = %humantime::format_duration(next_in), "the scheduled backup failed"),
    }
    // The newest in the folder was said as the plan was made; this one is said below.
    show(status, Some(plan), next_in, None);
    if let Ok(mut s) = status.lock() {
        let b = s.backup.get_or_insert_with(Default::default);
        b.running = None;
        match r {
            Ok(t) => {
                b.last = Some(crate::status::now());
                b.last_file = Some(t.file.display().to_string());
                b.last_bytes = Some(t.bytes);
                b.failure = None;
                b.unremoved = t.unremoved;
            }
            Err(e) => b.failure = Some(e),
        }
    }
    next_in
}

/// The folder, made owner-only if this makes it; one that exists must not be readable by others.
fn owner_only_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) => return Err(Error::io(dir, "cannot make the backup folder", e)),
    }
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, "cannot read the backup folder", e))?;
    if !meta.is_dir() {
        return Err(Error::io(dir, "cannot back up into", std::io::Error::other("it is not a folder ([service] backup_dir)")));
    }
    if let Some(mode) = idflow_core::owner_only::open_to_others(dir).map_err(|e| Error::io(dir, "cannot read the backup folder", e))? {
        let m = format!("others can read it (mode {mode:o}); backups hold identity data: chmod 700 it");
        return Err(Error::io(dir, "cannot back up into", std::io::Error::other(m)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path, keep: usize) -> Plan {
        let metaverse = dir.parent().unwrap_or(dir).join("idflow.db");
        Plan { dir: dir.to_path_buf(), prefix: "idflow-".into(), every: Duration::from_secs(3600), keep, metaverse }
    }

    fn stamp_of(name: &str) -> Option<DateTime<Utc>> {
        plan(Path::new("/b"), 1).stamp_of(name)
    }

    #[test]
    fn only_its_own_names_are_backups() {
        assert!(stamp_of("idflow-20261208T003000Z.db").is_some());
        for other in
            ["idflow-20261208T003000Z.db.partial-12", "idflow.db", "idflow-2026.db", "x-20261208T003000Z.db", "idflow-20261308T003000Z.db"]
        {
            assert!(stamp_of(other).is_none(), "{other}");
        }
    }

    #[test]
    fn the_newest_beyond_keep_stay_and_a_new_folder_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let db = t.path().join("idflow.db");
        drop(idflow_store::Store::open(&db).expect("store"));
        let dir = t.path().join("backups");
        let p = plan(&dir, 2);
        let due = |p: &Plan| p.due_in(p.newest().map(|n| n.0), Utc::now());
        assert_eq!(due(&p), Duration::ZERO, "none yet: due now");
        p.take().expect("first");
        let mode = |p: &Path| std::fs::metadata(p).expect("there").permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&dir.join("idflow-backups-of"))), (0o700, 0o600));
        assert!(due(&p) > Duration::from_secs(3500), "due an hour after the newest");
        // A service started later shows the newest in the folder as the last.
        let status = std::sync::Mutex::new(crate::status::Status::default());
        show(&status, Some(&p), Duration::ZERO, p.newest());
        let shown = status.lock().ok().and_then(|s| s.backup.clone()).expect("shown");
        assert!(shown.last_file.is_some_and(|f| stamp_of(f.rsplit('/').next().unwrap_or_default()).is_some()));
        assert!(shown.last_bytes.is_some_and(|n| n > 0) && shown.last.is_some());
        // Older backups (by name), one left by a killed backup of a process that is gone, and a
        // file of the admin's own.
        for name in
            ["idflow-20200101T000000Z.db", "idflow-20210101T000000Z.db", "idflow-20200101T000000Z.db.partial-999999999", "notes.txt"]
        {
            std::fs::write(dir.join(name), "x").expect("write");
        }
        // The partial, untouched for an hour (one written a moment ago may be a backup's under way).
        let partial = std::fs::File::options().write(true).open(dir.join("idflow-20200101T000000Z.db.partial-999999999")).expect("open");
        partial.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).expect("touch");
        // Names carry the second: the service takes them `every` (a second or more) apart.
        std::thread::sleep(Duration::from_millis(1100));
        let taken = p.take().expect("second");
        assert_eq!(taken.removed, 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir).expect("dir").filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        left.sort();
        assert_eq!(left.len(), 4, "{left:?}");
        assert_eq!(left[2..], ["idflow-backups-of", "notes.txt"]);
        assert!(left[..2].iter().all(|n| stamp_of(n).is_some()), "{left:?}");
    }

    #[test]
    fn a_failing_backup_removes_none_and_the_one_just_taken_stays_whatever_the_other_names_say() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("backups");
        let p = plan(&dir, 1);
        let db = t.path().join("idflow.db");
        // Ahead of the clock, one of another metaverse's, and an old one.
        let others = ["idflow-29991231T000000Z.db", "other-20200101T000000Z.db", "idflow-20200101T000000Z.db"];
        owner_only_dir(&dir).expect("mkdir");
        for name in others {
            std::fs::write(dir.join(name), "x").expect("write");
        }
        p.take().expect_err("no metaverse yet");
        let count = || std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(count(), 3, "a failing backup removes none");
        // A metaverse that is no database: the folder is claimed, the backup itself fails.
        std::fs::write(&db, "not a database").expect("write");
        p.take().expect_err("not a database");
        assert_eq!(count(), 4, "a backup failing midway removes none (the folder now says whose it is)");
        std::fs::remove_file(&db).expect("removed");
        drop(idflow_store::Store::open(&db).expect("store"));
        let taken = p.take().expect("taken");
        assert!(taken.file.exists(), "the one just taken stays");
        assert!(dir.join(others[1]).exists(), "another metaverse's backups are not this one's");
        assert_eq!((taken.removed, count()), (2, 3), "the one taken, the other's, and whose backups these are");
    }

    #[test]
    fn a_folder_holding_another_metaverses_backups_is_refused_and_left_as_it_is() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("backups");
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let mut dbs = Vec::new();
        for d in [&a, &b] {
            std::fs::create_dir(d).expect("mkdir");
            let db = d.join("idflow.db");
            drop(idflow_store::Store::open(&db).expect("store"));
            dbs.push(db);
        }
        let of = |db: &Path| Plan { metaverse: db.to_path_buf(), ..plan(&dir, 1) };
        let taken = of(&dbs[0]).take().expect("the first metaverse's");
        let before: Vec<_> = std::fs::read_dir(&dir).expect("dir").filter_map(|e| Some(e.ok()?.file_name())).collect();
        let e = of(&dbs[1]).take().expect_err("another metaverse of the same name").to_string();
        assert!(e.contains("backups of") && e.contains(&a.display().to_string()) && e.contains("a backup folder of its own"), "{e}");
        let after: Vec<_> = std::fs::read_dir(&dir).expect("dir").filter_map(|e| Some(e.ok()?.file_name())).collect();
        assert_eq!(before, after, "nothing in it touched");
        assert!(taken.file.exists());
        // Nor are the first one's backups said to be the other's: none yet, due at once.
        let b = of(&dbs[1]);
        assert_eq!(b.due_in(b.newest().map(|n| n.0), Utc::now()), Duration::ZERO);
        let status = std::sync::Mutex::new(crate::status::Status::default());
        show(&status, Some(&of(&dbs[1])), Duration::ZERO, of(&dbs[1]).newest());
        assert!(status.lock().ok().and_then(|s| s.backup.clone()).is_some_and(|b| b.last.is_none() && b.last_file.is_none()));
        // The same metaverse, named another way, is the same one.
        let again = a.join("..").join("a").join("idflow.db");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(of(&again).take().expect("the same metaverse").removed, 1);
    }

    #[test]
    fn a_failed_backup_is_tried_again_in_ten_minutes_and_said_until_one_succeeds() {
        let status = std::sync::Mutex::new(crate::status::Status::default());
        let mut p = plan(Path::new("/b"), 1);
        p.every = Duration::from_secs(24 * 3600);
        assert_eq!(ended(&status, &p, Err("disk full".into())), Duration::from_secs(600));
        let failure = || status.lock().ok().and_then(|s| s.backup.clone()?.failure);
        assert_eq!(failure().as_deref(), Some("disk full"));
        // While one is taken, the status says since when, not when it was due.
        begun(&status);
        let b = status.lock().ok().and_then(|s| s.backup.clone()).expect("backup status");
        assert!(b.running.is_some() && b.next.is_none(), "{b:?}");
        let taken = |unremoved: Option<&str>| Taken {
            file: "/b/idflow-20261208T003000Z.db".into(),
            bytes: 1,
            removed: 0,
            unremoved: unremoved.map(str::to_string),
        };
        let unremoved = || status.lock().ok().and_then(|s| s.backup.clone()?.unremoved);
        assert_eq!(ended(&status, &p, Ok(taken(Some("1 older backup(s) ...")))), p.every);
        assert!(status.lock().ok().and_then(|s| s.backup.clone()).is_some_and(|b| b.running.is_none() && b.next.is_some()));
        assert_eq!((failure(), unremoved().as_deref()), (None, Some("1 older backup(s) ...")));
        assert_eq!(ended(&status, &p, Ok(taken(None))), p.every);
        assert_eq!((failure(), unremoved()), (None, None), "said until a backup removes them");
        p.every = Duration::from_secs(60);
        assert_eq!(ended(&status, &p, Err("again".into())), p.every, "every, when shorter");
    }

    #[test]
    fn a_folder_others_read_or_a_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let db = t.path().join("idflow.db");
        drop(idflow_store::Store::open(&db).expect("store"));
        let open = t.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = plan(&open, 1).take().expect_err("refused").to_string();
        assert!(e.contains("chmod 700"), "{e}");
        let file = t.path().join("file");
        std::fs::write(&file, "x").expect("write");
        let e = plan(&file, 1).take().expect_err("refused").to_string();
        assert!(e.contains("backup"), "{e}");
    }
}
