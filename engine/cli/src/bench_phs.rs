//! `idflow bench-phs`: the password hash sync stage against a bare loop of the same PBKDF2
//! calls on all cores, in the same run. The stage here reads hashes from memory (not a
//! directory) and delivers to the file target, so the figure is the stage's own cost.
use crate::config::Config;
use crate::error::{Error, Result};
use crate::phs::pph1;
use crate::phs::source::MemorySource;
use crate::store::{cs, CsObject, ExportState, Link, Store};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

fn fake_nt(i: usize) -> pph1::NtHash {
    pph1::nt_hash(&format!("password-{i}"))
}

pub fn run(users: usize, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::File { file: dir.to_path_buf(), message: e.to_string() })?;
    let threads = rayon::current_num_threads();
    println!("idflow bench-phs: {users} users, {threads} threads");
    let hashes: Vec<pph1::NtHash> = (0..users).map(fake_nt).collect();

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
        let tx = store.conn.unchecked_transaction()?;
        for i in 0..users {
            let m = crate::store::mv::create(&tx, "person")?;
            let mut s = CsObject::new("corp", "person");
            s.anchor = Some(format!("src-{i}"));
            s.dn = Some(format!("uid=u{i},dc=example,dc=org"));
            s.present = true;
            s.mv_id = Some(m);
            s.link = Some(Link::Projected);
            cs::save(&tx, &s)?;
            let mut t = CsObject::new("cloud", "User");
            t.anchor = Some(format!("t-{i}"));
            t.present = true;
            t.mv_id = Some(m);
            t.link = Some(Link::Provisioned);
            t.export_state = Some(ExportState::Present);
            t.desired = Some(Default::default());
            cs::save(&tx, &t)?;
            objects.push(serde_json::json!({"id": format!("t-{i}"), "type": "User", "attributes": {"userName": format!("u{i}@example.org")}}));
        }
        tx.commit()?;
    }
    let out = dir.join("out/cloud.json");
    std::fs::create_dir_all(dir.join("out")).map_err(|e| Error::File { file: out.clone(), message: e.to_string() })?;
    std::fs::write(&out, serde_json::to_string(&serde_json::json!({ "objects": objects })).unwrap_or_default())
        .map_err(|e| Error::File { file: out.clone(), message: e.to_string() })?;
    let open = |name: &str| -> Result<Box<dyn crate::connector::Connector>> {
        let c = config.connector(name).ok_or_else(|| Error::Config(name.to_string()))?;
        crate::connector::open(c)
    };
    let source = |hs: &[pph1::NtHash]| -> MemorySource {
        MemorySource(hs.iter().enumerate().map(|(i, h)| (format!("src-{i}"), Ok(h.clone()))).collect::<HashMap<_, _>>())
    };
    let mut errors = Vec::new();
    let t = Instant::now();
    let s = crate::phs::stage::run(&store.conn, &config, &mut source(&hashes), &open, false, &mut errors)?;
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
    let s = crate::phs::stage::run(&store.conn, &config, &mut source(&hashes), &open, false, &mut errors)?;
    println!("{:<40} {:>8.3} s  ({} unchanged, {} delivered)", "stage, nothing changed", t.elapsed().as_secs_f64(), s.unchanged, s.delivered);
    let mut changed = hashes.clone();
    changed[7] = pph1::nt_hash("a new password");
    let t = Instant::now();
    let s = crate::phs::stage::run(&store.conn, &config, &mut source(&changed), &open, false, &mut errors)?;
    println!("{:<40} {:>8.3} s  ({} delivered)", "stage, one password changed", t.elapsed().as_secs_f64(), s.delivered);
    if !errors.is_empty() {
        println!("errors: {}", errors.len());
    }
    Ok(())
}
