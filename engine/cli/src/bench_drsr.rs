//! `idflow bench-drsr`: how fast hashes come out of Active Directory over MS-DRSR, pulled and
//! decrypted, without the PBKDF2 of the PPH1 transform and without delivery.
use idflow_core::hash::PullRequest;
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use idflow_engine::Engine;
use idflow_store::{ReadOps, WriteOps};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub(crate) fn run(config_path: &Path, registry: Arc<Registry>, full: bool, keep: bool) -> Result<()> {
    let engine = Engine::open(config_path, registry)?;
    let p = engine.config.password_hash_sync.as_ref().ok_or_else(|| Error::Config("no [password_hash_sync] section".into()))?;
    let key = format!("phs.watermark.{}", p.source);
    let stored = engine.store.read()?.meta_get(&key)?;
    let mut source = engine.hash_source()?;
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
            let tx = engine.store.write()?;
            tx.meta_set(&key, &w)?;
            tx.commit()?;
        }
    }
    Ok(())
}
