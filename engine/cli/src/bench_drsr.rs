//! `idflow bench-drsr`: how fast hashes come out of Active Directory over MS-DRSR, pulled and
//! decrypted, without the PBKDF2 of the PPH1 transform and without delivery.
use crate::config::Config;
use crate::error::{Error, Result};
use crate::phs::source::PullRequest;
use std::time::Instant;

pub fn run(config: &Config, full: bool, keep: bool) -> Result<()> {
    let p = config.password_hash_sync.as_ref().ok_or_else(|| Error::Config("no [password_hash_sync] section".into()))?;
    let cfg = config.connector(&p.source).ok_or_else(|| Error::Config(format!("no connector named {:?}", p.source)))?;
    let store = crate::store::Store::open(&config.metaverse_path)?;
    let key = format!("phs.watermark.{}", p.source);
    let stored = crate::store::get_meta(&store.conn, &key)?;
    let mut source = crate::phs::drsr_source::open(cfg, &p.hash_attribute)?;
    let t = Instant::now();
    let pull = source.read(&PullRequest { watermark: stored.as_deref(), full, wanted: &[] })?;
    let secs = t.elapsed().as_secs_f64();
    let ok = pull.hashes.values().filter(|h| h.is_ok()).count();
    println!(
        "{} pull: {} hashes ({} failed) in {:.3} s = {:.0} users/s pulled and decrypted (connect, bind and paging included; no PBKDF2)",
        if pull.complete { "full" } else { "incremental" },
        ok,
        pull.hashes.len() - ok,
        secs,
        ok as f64 / secs.max(1e-9)
    );
    if keep {
        if let Some(w) = pull.watermark {
            crate::store::set_meta(&store.conn, &key, &w)?;
        }
    }
    Ok(())
}
