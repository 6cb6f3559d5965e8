//! `idflow bench-phs`: the password hash sync stage against a bare loop of the same PBKDF2
//! calls on all cores, in the same run. The stage here reads hashes from memory (not a
//! directory) and delivers to the file target, so the figure is the stage's own cost.
use idflow_core::hash::{nt_hash, NtHash};
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use idflow_engine::phs::pph1;
use idflow_engine::{Config, Engine, MemorySource};
use idflow_store::{CsObject, ExportState, Link, Store, WriteOps};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn fake_nt(i: usize) -> NtHash {
    nt_hash(&format!("password-{i}"))
}

pub(crate) fn run(registry: Arc<Registry>, users: usize, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "", e))?;
    let threads = rayon::current_num_threads();
    println!("idflow bench-phs: {users} users, {threads} threads");
    let hashes: Vec<NtHash> = (0..users).map(fake_nt).collect();

    // The floor: the same PBKDF2 calls (fresh salt each) in a bare parallel loop.
    let t = Instant::now();
    let n: usize = hashes.par_iter().map(|h| pph1::transform(h).map(|s| s.len()).unwrap_or(0)).filter(|l| *l > 0).count();
    let bare = t.elapsed().as_secs_f64();
    println!("{:<40} {:>8.3} s {:>10.0} users/s", "bare PBKDF2 loop (all cores)", bare, n as f64 / bare);

    // The stage: source and target objects linked through the metaverse, a file target holding them.
    let cfg_text = "[metaverse]\npath = \"state/idflow.db\"\n[[connector]]\nname = \"corp\"\ntype = \"ldif\"\npath = \"x.ldif\"\n[connector.object_types]\nperson = \"(objectClass=*)\"\n\
         [[connector]]\nname = \"cloud\"\ntype = \"file\"\npath = \"out/cloud.json\"\n\
         [password_hash_sync]\nsource = \"corp\"\n[password_hash_sync.targets.cloud]\nformat = \"pph1\"\nattribute = \"passwordHash\"\n";
    let config = Config::parse(&dir.join("idflow.toml"), cfg_text)?;
    let store = Store::open(&config.metaverse_path)?;
    let mut objects = Vec::with_capacity(users);
    {
        let tx = store.write()?;
        for i in 0..users {
            let m = tx.mv_create("person", &Default::default())?;
            let mut s = CsObject::new("corp", "person");
            s.anchor = Some(format!("src-{i}"));
            s.dn = Some(format!("uid=u{i},dc=example,dc=org"));
            s.present = true;
            s.mv_id = Some(m);
            s.link = Some(Link::Projected);
            tx.cs_save(&s)?;
            let mut t = CsObject::new("cloud", "User");
            t.anchor = Some(format!("t-{i}"));
            t.present = true;
            t.mv_id = Some(m);
            t.link = Some(Link::Provisioned);
            t.export_state = Some(ExportState::Present);
            t.desired = Some(Default::default());
            tx.cs_save(&t)?;
            objects
                .push(serde_json::json!({"id": format!("t-{i}"), "type": "User", "attributes": {"userName": format!("u{i}@example.org")}}));
        }
        tx.commit()?;
    }
    let out = dir.join("out/cloud.json");
    std::fs::create_dir_all(dir.join("out")).map_err(|e| Error::io(&out, "", e))?;
    std::fs::write(&out, serde_json::to_string(&serde_json::json!({ "objects": objects })).unwrap_or_default())
        .map_err(|e| Error::io(&out, "", e))?;
    let engine = Engine::from_parts(config, Vec::new(), store, registry)?;
    let source = |hs: &[NtHash]| -> MemorySource {
        MemorySource(hs.iter().enumerate().map(|(i, h)| (format!("src-{i}"), Ok(h.clone()))).collect::<HashMap<_, _>>())
    };
    let mut errors = Vec::new();
    let t = Instant::now();
    let s = engine.phs_from(&mut source(&hashes), false, &mut errors)?;
    let stage = t.elapsed().as_secs_f64();
    println!(
        "{:<40} {:>8.3} s {:>10.0} users/s  ({:.0}% of the bare loop; hashing {:.3} s, {} delivered)",
        "stage, first delivery (all users)",
        stage,
        s.delivered as f64 / stage,
        100.0 * bare / stage,
        s.hashing_ms as f64 / 1000.0,
        s.delivered
    );
    let t = Instant::now();
    let s = engine.phs_from(&mut source(&hashes), false, &mut errors)?;
    println!(
        "{:<40} {:>8.3} s  ({} unchanged, {} delivered)",
        "stage, nothing changed",
        t.elapsed().as_secs_f64(),
        s.unchanged,
        s.delivered
    );
    let mut changed = hashes.clone();
    changed[7] = nt_hash("a new password");
    let t = Instant::now();
    let s = engine.phs_from(&mut source(&changed), false, &mut errors)?;
    println!("{:<40} {:>8.3} s  ({} delivered)", "stage, one password changed", t.elapsed().as_secs_f64(), s.delivered);
    if !errors.is_empty() {
        println!("errors: {}", errors.len());
    }
    Ok(())
}
