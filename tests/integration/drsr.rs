//! Password hash sync from Active Directory over MS-DRSR, against the real Samba AD DC that
//! scripts/samba-dc.sh starts: known passwords arrive as PPH1 strings that verify, a
//! least-privilege replication account works, missing rights and wrong passwords fail clearly,
//! runs after the first pull only what changed, and faults lose nothing.
use crate::common::{self, repo, Env};
use crate::phs::verify;
use crate::samba_ad::{b64, dc, ldap, tag, ADMIN_PW};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) fn pwd(p: &str) -> String {
    let q: Vec<u8> = format!("\"{p}\"").encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, q)
}

/// A user; with an empty password, one that has none (disabled, PASSWD_NOTREQD).
fn user_ldif(ou: &str, sam: &str, password: &str, disabled: bool) -> String {
    format!(
        "dn: CN={sam},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: {sam}\nuserPrincipalName: {sam}@example.test\n\
         givenName: {sam}\nsn: Tester\ndisplayName:: {}\n{}userAccountControl: {}\n\n",
        b64(&format!("{sam} Tester")),
        if password.is_empty() { String::new() } else { format!("unicodePwd:: {}\n", pwd(password)) },
        if password.is_empty() {
            546
        } else if disabled {
            514
        } else {
            512
        }
    )
}

fn set_password(dir: &Path, dn: &str, password: &str) {
    ldap(dir, "ldapmodify", &format!("dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n\n", pwd(password)));
}

pub(crate) fn samba_tool(args: &[&str]) {
    let out = Command::new("samba-tool")
        .args(args)
        .args(["-H", "ldap://127.0.0.1", "-U", &format!("Administrator%{ADMIN_PW}")])
        .output()
        .expect("samba-tool runs");
    assert!(out.status.success(), "samba-tool {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Grants a replication right on the domain root, as the README tells admins to.
fn grant(trustee_dn: &str, car: &str) {
    samba_tool(&[
        "dsacl",
        "set",
        "--objectdn=DC=example,DC=test",
        &format!("--car={car}"),
        "--action=allow",
        &format!("--trusteedn={trustee_dn}"),
    ]);
}

/// The shipped example, pointed at this DC and this run's OU, replicating as `account`.
fn env_for(dir: &Path, ou: &str, account: &str, password: &str, extra: &str) -> Env {
    let mut e = Env::empty();
    e.vars.push(("AD_PASSWORD".into(), ADMIN_PW.into()));
    e.vars.push(("AD_REPL_PASSWORD".into(), password.into()));
    for f in ["users.toml", "groups.toml", "entra.rhai"] {
        e.write(&format!("rules/{f}"), &std::fs::read_to_string(repo().join("rules/ad-to-cloud").join(f)).expect("rules"));
    }
    let cfg = std::fs::read_to_string(repo().join("examples/ad-to-cloud-phs/idflow.toml"))
        .expect("the example config")
        .replace("paths = [\"../../rules/ad-to-cloud\"]", "paths = [\"rules\"]")
        .replace("ca_file = \"ca.pem\"", &format!("ca_file = \"{}\"", dir.join("ca.pem").display()))
        .replace("idflow-sync@example.test", "Administrator@example.test")
        .replace("base_dn = \"DC=example,DC=test\"", &format!("base_dn = \"DC=example,DC=test\"\ninclude_ous = [\"{ou}\"]"))
        .replace(
            "# account = \"EXAMPLE\\\\idflow-repl\"",
            &format!("account = \"EXAMPLE\\\\{account}\"\npassword_env = \"AD_REPL_PASSWORD\"\n{extra}"),
        );
    assert!(cfg.contains(account), "the example config keeps its account line");
    e.write("idflow.toml", &cfg);
    e
}

fn hash_of(e: &Env, sam: &str) -> Option<String> {
    e.cloud_user(&format!("{sam}@example.test")).and_then(|u| u["attributes"]["passwordHash"].as_str().map(str::to_string))
}

fn phs_summary(e: &Env) -> serde_json::Value {
    e.json(&["history"], 0)[0]["summary"]["password_hash_sync"].clone()
}

fn watermark(e: &Env) -> Option<String> {
    common::meta(e, "phs.watermark.ad")
}

/// A TCP proxy in front of the DC's DRSUAPI port that closes both sides once `cut_after`
/// bytes of the DC's replies have passed: what the client sees when the DC dies mid-reply.
fn cutting_proxy(target: u16, cut_after: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
            let passed = Arc::new(AtomicUsize::new(0));
            let (mut c2, mut s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while let Ok(n) = c2.read(&mut b) {
                    if n == 0 || s2.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
            let (mut client, mut server) = (client, server);
            std::thread::spawn(move || {
                let mut b = [0u8; 1024];
                while let Ok(n) = server.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    let before = passed.fetch_add(n, Ordering::SeqCst);
                    let keep = n.min(cut_after.saturating_sub(before));
                    if client.write_all(&b[..keep]).is_err() || keep < n {
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn drsr_hashes_verify_incremental_runs_and_faults() {
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=phs{t},DC=example,DC=test");
    let outside = format!("OU=nophs{t},DC=example,DC=test");
    let repl = format!("repl{t}");
    let mut ldif = format!(
        "dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\ndn: {outside}\nchangetype: add\nobjectClass: organizationalUnit\n\n"
    );
    for i in 1..=5 {
        ldif.push_str(&user_ldif(&ou, &format!("p{t}u{i}"), &format!("Start-Pw-{i}!x"), false));
    }
    ldif.push_str(&user_ldif(&ou, &format!("p{t}off"), "Disabled-Pw-1!x", true));
    ldif.push_str(&user_ldif(&ou, &format!("p{t}nopw"), "", true));
    ldif.push_str(&user_ldif(&outside, &format!("p{t}out"), "Outside-Pw-1!x", false));
    // The replication account: an ordinary user with the two rights and nothing else.
    ldif.push_str(&user_ldif(&outside, &repl, "Repl-Account-Pw-1!", false));
    ldap(&dir, "ldapmodify", &ldif);
    let repl_dn = format!("CN={repl},{outside}");
    grant(&repl_dn, "get-changes");
    grant(&repl_dn, "get-changes-all");

    let e = env_for(&dir, &ou, &repl, "Repl-Account-Pw-1!", "");
    let first = e.ok(&["run", "-v"], 0);
    let s = phs_summary(&e);
    assert_eq!(s["delivered"], 6, "five enabled users and the disabled one: {s} {first:?}");
    assert_eq!(s["incremental"], false, "{s}");
    assert_eq!(s["without_hash"], 1, "the user without a password: {s}");
    for i in 1..=5 {
        let h = hash_of(&e, &format!("p{t}u{i}")).expect("a hash");
        assert!(h.starts_with("v1;PPH1_MD4,") && h.ends_with(';'), "{h}");
        assert_eq!(verify(&e, &h, &format!("Start-Pw-{i}!x")), 0, "p{t}u{i}'s hash verifies against its password");
        assert_eq!(verify(&e, &h, &format!("Start-Pw-{i}!y")), 1);
    }
    // Entra Connect syncs the hashes of disabled users too; the account arrives disabled.
    let off = e.cloud_user(&format!("p{t}off@example.test")).expect("disabled user provisioned");
    assert_eq!(off["attributes"]["active"], "false", "{off}");
    assert_eq!(verify(&e, off["attributes"]["passwordHash"].as_str().expect("hash"), "Disabled-Pw-1!x"), 0);
    assert!(e.cloud_user(&format!("p{t}out@example.test")).is_none(), "out of scope: not provisioned, no hash");
    // No hash, NT or PPH1, in the output, the database or the watermark.
    let nt = hex::encode(idflow_core::hash::nt_hash("Start-Pw-1!x").as_slice());
    let db = std::fs::read(e.path("state/idflow.db")).expect("db");
    let db_text = String::from_utf8_lossy(&db).to_lowercase();
    assert!(!db_text.contains(&nt) && !db_text.contains("pph1_md4"), "no hash in the metaverse");
    assert!(!first.stderr.to_lowercase().contains(&nt) && !first.stdout.contains("PPH1"), "no hash in the output");
    let wm = watermark(&e).expect("a watermark after the first pull");
    assert!(wm.contains("usn_high_obj_update") && wm.contains("invocation_id"), "{wm}");

    // Nothing changed: an incremental pull, nothing delivered, nothing read again (the user
    // without a password is remembered as such, not asked for on every run).
    e.ok(&["run"], 0);
    let s = phs_summary(&e);
    assert_eq!((s["incremental"].clone(), s["delivered"].clone(), s["pulled"].clone()), (true.into(), 0.into(), 0.into()), "{s}");

    // One password changes: the next run pulls and delivers only that user.
    let before = hash_of(&e, &format!("p{t}u1")).expect("hash");
    set_password(&dir, &format!("CN=p{t}u2,{ou}"), "Changed-Pw-2!x");
    e.ok(&["run"], 0);
    let s = phs_summary(&e);
    assert_eq!(s["incremental"], true, "{s}");
    assert_eq!(s["delivered"], 1, "{s}");
    assert_eq!(s["pulled"], 1, "only the changed user's hash was pulled: {s}");
    assert_eq!(verify(&e, &hash_of(&e, &format!("p{t}u2")).expect("hash"), "Changed-Pw-2!x"), 0);
    assert_eq!(hash_of(&e, &format!("p{t}u1")).as_deref(), Some(before.as_str()), "unchanged users are not re-salted");

    // A new user is provisioned and gets its hash in the same run.
    ldap(&dir, "ldapmodify", &user_ldif(&ou, &format!("p{t}u6"), "New-User-Pw-6!x", false));
    e.ok(&["run"], 0);
    assert_eq!(phs_summary(&e)["delivered"], 1);
    assert_eq!(verify(&e, &hash_of(&e, &format!("p{t}u6")).expect("hash"), "New-User-Pw-6!x"), 0);

    // A corrupted watermark: a warning, a full pull, and nothing delivered twice.
    common::set_meta(&e, "phs.watermark.ad", Some(r#"{"naming_context":"DC=example,DC=test","invocation_id":"zz"#));
    let o = e.ok(&["run"], 0);
    assert!(o.stderr.contains("watermark") && o.stderr.contains("pulling every hash again"), "{o:?}");
    let s = phs_summary(&e);
    assert_eq!((s["incremental"].clone(), s["delivered"].clone()), (false.into(), 0.into()), "{s}");
    assert!(serde_json::from_str::<serde_json::Value>(&watermark(&e).expect("wm")).is_ok(), "the watermark is whole again");
    // A watermark from another invocation of the DC (a restore): the DC ignores it and sends all.
    let mut w: serde_json::Value = serde_json::from_str(&watermark(&e).expect("wm")).expect("json");
    w["invocation_id"] = "11111111-2222-3333-4444-555555555555".into();
    common::set_meta(&e, "phs.watermark.ad", Some(&w.to_string()));
    let o = e.ok(&["run"], 0);
    assert!(o.stderr.contains("invocationId differs"), "{o:?}");
    assert_eq!(phs_summary(&e)["delivered"], 0);

    // The DC dies mid-pull: the run fails clearly, nothing is lost, the watermark stays, and the
    // next run completes.
    set_password(&dir, &format!("CN=p{t}u3,{ou}"), "Changed-Pw-3!x");
    let old3 = hash_of(&e, &format!("p{t}u3")).expect("hash");
    let wm_before = watermark(&e);
    let drs_port =
        idflow_msrpc::map_tcp("127.0.0.1", 135, &idflow_msrpc::drsr::DRSUAPI, std::time::Duration::from_secs(5)).expect("ept_map");
    let proxy = cutting_proxy(drs_port, 3000);
    let cut = env_for(&dir, &ou, &repl, "Repl-Account-Pw-1!", &format!("rpc_port = {proxy}"));
    std::fs::copy(e.path("idflow.toml"), e.path("idflow.toml.good")).expect("save");
    std::fs::write(e.path("idflow.toml"), cut.read("idflow.toml")).expect("swap");
    let o = e.run(&["phs", "--full"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("closed the connection") && o.stderr.contains("nothing was delivered"), "{o:?}");
    assert_eq!(hash_of(&e, &format!("p{t}u3")).as_deref(), Some(old3.as_str()), "the target keeps what it had");
    assert_eq!(watermark(&e), wm_before, "the watermark did not move");
    // The DC stopped altogether.
    std::fs::copy(e.path("idflow.toml.good"), e.path("idflow.toml")).expect("restore");
    let stop = Command::new("bash").arg(repo().join("scripts/samba-dc.sh")).arg("stop").arg(&dir).status().expect("stop");
    assert!(stop.success());
    let o = e.run(&["phs"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("cannot connect to 127.0.0.1:135"), "{o:?}");
    let start = Command::new("bash").arg(repo().join("scripts/samba-dc.sh")).arg("start").arg(&dir).status().expect("start");
    assert!(start.success(), "the DC starts again");
    e.ok(&["phs"], 0);
    let s = phs_summary(&e);
    assert_eq!((s["incremental"].clone(), s["delivered"].clone()), (true.into(), 1.into()), "{s}");
    assert_eq!(verify(&e, &hash_of(&e, &format!("p{t}u3")).expect("hash"), "Changed-Pw-3!x"), 0);

    // Kerberos (DCE style, every fragment sealed) instead of NTLM, same least-privilege account.
    let ntlm_cfg = e.read("idflow.toml");
    e.write("idflow.toml", &ntlm_cfg.replace("auth = \"ntlm\"", "auth = \"kerberos\"\nspn = \"host/dc1.example.test\""));
    set_password(&dir, &format!("CN=p{t}u4,{ou}"), "Changed-Pw-4!x");
    let o = e.ok(&["phs", "-v"], 0);
    let s = phs_summary(&e);
    assert_eq!((s["incremental"].clone(), s["delivered"].clone()), (true.into(), 1.into()), "{s} {o:?}");
    assert_eq!(verify(&e, &hash_of(&e, &format!("p{t}u4")).expect("hash"), "Changed-Pw-4!x"), 0);
    // A full pull over Kerberos decrypts every hash to what NTLM delivered: nothing to deliver.
    common::set_meta(&e, "phs.watermark.ad", None);
    e.ok(&["phs"], 0);
    let s = phs_summary(&e);
    assert_eq!((s["incremental"].clone(), s["delivered"].clone(), s["failed"].clone()), (false.into(), 0.into(), 0.into()), "{s}");
    e.write("idflow.toml", &ntlm_cfg);

    // A wrong password for the replication account: a clear error that does not print it.
    let mut bad = env_for(&dir, &ou, &repl, "Not-The-Password-9", "");
    std::fs::copy(e.path("idflow.toml"), bad.path("idflow.toml")).expect("cfg");
    bad.vars.retain(|(k, _)| k != "AD_REPL_PASSWORD");
    bad.vars.push(("AD_REPL_PASSWORD".into(), "Not-The-Password-9".into()));
    let o = bad.run(&["run"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains(&format!("refused the replication account EXAMPLE\\{repl}")), "{o:?}");
    assert!(!o.stderr.contains("Not-The-Password-9"), "the password is not printed");
}

#[test]
fn drsr_names_the_missing_replication_right() {
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=rights{t},DC=example,DC=test");
    let mut ldif = format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n");
    ldif.push_str(&user_ldif(&ou, &format!("r{t}u1"), "Rights-Pw-1!x", false));
    ldif.push_str(&user_ldif(&ou, &format!("none{t}"), "No-Rights-Pw-1!", false));
    ldif.push_str(&user_ldif(&ou, &format!("half{t}"), "Half-Rights-Pw-1!", false));
    ldap(&dir, "ldapmodify", &ldif);
    grant(&format!("CN=half{t},{ou}"), "get-changes");

    let none = env_for(&dir, &ou, &format!("none{t}"), "No-Rights-Pw-1!", "");
    // The run's sync and export stand; its password hash sync stage fails and says why.
    let o = none.run(&["run"]);
    assert!(none.cloud_user(&format!("r{t}u1@example.test")).is_some(), "sync and export ran: {o:?}");
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("lacks \"Replicating Directory Changes\" (DS-Replication-Get-Changes"), "{o:?}");

    let half = env_for(&dir, &ou, &format!("half{t}"), "Half-Rights-Pw-1!", "");
    let o = half.run(&["run"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("lacks \"Replicating Directory Changes All\""), "{o:?}");

    // The same over Kerberos; and Kerberos with a wrong password, or without the DC's name.
    let kerberos = half.read("idflow.toml").replace("auth = \"ntlm\"", "auth = \"kerberos\"\nspn = \"host/dc1.example.test\"");
    half.write("idflow.toml", &kerberos);
    let o = half.run(&["phs"]);
    assert!(o.code != 0 && o.stderr.contains("lacks \"Replicating Directory Changes All\""), "{o:?}");
    let mut wrong = half;
    wrong.vars.retain(|(k, _)| k != "AD_REPL_PASSWORD");
    wrong.vars.push(("AD_REPL_PASSWORD".into(), "Wrong-Krb-Pw-7".into()));
    let o = wrong.run(&["phs"]);
    assert!(o.code != 0 && o.stderr.contains(&format!("refused the replication account EXAMPLE\\half{t}")), "{o:?}");
    assert!(!o.stderr.contains("Wrong-Krb-Pw-7"), "the password is not printed");
    wrong.write("idflow.toml", &kerberos.replace("spn = \"host/dc1.example.test\"", ""));
    let o = wrong.run(&["phs"]);
    assert!(o.code != 0 && o.stderr.contains("needs the DC's name"), "{o:?}");
}
