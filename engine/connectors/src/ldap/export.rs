//! LDAP export: add, modify (replace, add and delete values), delete, and rename/move (modrdn),
//! each with its own result. Adds read back the new entry's anchor.
use super::conf::Conf;
use super::session;
use crate::anchor::anchor_text;
use idflow_core::connector::{ChangeKind, ExportOp, OpKind, OpResult};
use idflow_core::{dn, Result, Value};
use ldap3::{Ldap, Mod, Scope, SearchEntry};
use std::collections::HashSet;

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Bin(b) => b.clone(),
        Value::Ref(r) => r.to_string().into_bytes(),
    }
}

fn failed(what: &str, r: &ldap3::LdapResult) -> OpResult {
    OpResult::Failed(format!("{what}: result code {} {}", r.rc, r.text))
}

async fn read_anchor(conf: &Conf, ldap: &mut Ldap, dn: &str) -> Option<String> {
    let (rs, _) = ldap
        .with_timeout(conf.timeout)
        .search(dn, Scope::Base, "(objectClass=*)", vec![conf.anchor.as_str()])
        .await
        .ok()?
        .success()
        .ok()?;
    let e = SearchEntry::construct(rs.into_iter().next()?);
    let v = e
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&conf.anchor))
        .and_then(|(_, v)| v.first().map(|s| Value::Str(s.clone())))
        .or_else(|| {
            e.bin_attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&conf.anchor))
                .and_then(|(_, v)| v.first().map(|b| Value::Bin(b.clone())))
        })?;
    Some(anchor_text(&v))
}

/// Secrets a directory does not show once written: not compared by [`landed`].
const UNREAD: [&str; 3] = ["userPassword", "unicodePwd", "sambaNTPassword"];

/// The anchor of the entry at `dn` when it is the one an add of `sent` made while its answer was
/// lost (a timeout, a dropped connection): made by the account idflow binds as (`creatorsName`,
/// which OpenLDAP keeps; AD keeps no creator, so there the add stays an error), and holding every
/// value sent (names and object classes compared without case; secrets, which a directory does
/// not show, not compared). `None` for anything else: an entry someone else made is left alone,
/// and the add stays an error on the object.
async fn landed(conf: &Conf, ldap: &mut Ldap, dn: &str, sent: &[(Vec<u8>, HashSet<Vec<u8>>)]) -> Option<String> {
    let bind = conf.bind_dn.as_deref()?;
    let compared: Vec<(&str, &HashSet<Vec<u8>>)> = sent
        .iter()
        .filter_map(|(k, v)| std::str::from_utf8(k).ok().map(|k| (k, v)))
        .filter(|(k, _)| !UNREAD.iter().any(|u| u.eq_ignore_ascii_case(k)))
        .collect();
    let mut names: Vec<&str> = compared.iter().map(|(k, _)| *k).collect();
    names.extend([conf.anchor.as_str(), "creatorsName"]);
    let (rs, _) = ldap.with_timeout(conf.timeout).search(dn, Scope::Base, "(objectClass=*)", names).await.ok()?.success().ok()?;
    let e = super::entry::decode(rs.into_iter().next()?.0, &conf.binary).ok()?;
    let there = |name: &str| e.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    match there("creatorsName")?.first()? {
        Value::Str(creator) if dn::norm(creator) == dn::norm(bind) => {}
        _ => return None,
    }
    for (name, values) in compared {
        let fold = name.eq_ignore_ascii_case("objectClass");
        let key = |b: &[u8]| if fold { b.to_ascii_lowercase() } else { b.to_vec() };
        let held: HashSet<Vec<u8>> = there(name)?.iter().map(|v| key(&bytes(v))).collect();
        if !values.iter().all(|v| held.contains(&key(v))) {
            return None;
        }
    }
    Some(anchor_text(there(&conf.anchor)?.first()?))
}

async fn one(conf: &Conf, ldap: &mut Ldap, op: &ExportOp) -> std::result::Result<OpResult, ldap3::LdapError> {
    match op.kind {
        OpKind::Add => {
            let Some(dn) = op.new_dn.clone().or_else(|| op.dn.clone()) else {
                return Ok(OpResult::Failed("an LDAP target needs a DN: give the outbound rule dn = '...'".into()));
            };
            let sent = || -> Vec<(Vec<u8>, HashSet<Vec<u8>>)> {
                op.attrs
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.iter().map(bytes).collect()))
                    .collect()
            };
            let r = ldap.with_timeout(conf.timeout).add(&dn, sent()).await?;
            if r.rc == 68 {
                if let Some(anchor) = landed(conf, ldap, &dn, &sent()).await {
                    tracing::info!(connector = %conf.name, %dn, "the entry an earlier add made (its answer was lost) is recorded as added");
                    return Ok(OpResult::Done { anchor: Some(anchor), dn: Some(dn) });
                }
            }
            if r.rc != 0 {
                return Ok(failed(&format!("add {dn}"), &r));
            }
            let anchor = read_anchor(conf, ldap, &dn).await;
            Ok(OpResult::Done { anchor, dn: Some(dn) })
        }
        OpKind::Update => {
            let Some(mut dn) = op.dn.clone() else { return Ok(OpResult::Failed("the object has no DN to modify".into())) };
            if let Some(new_dn) = &op.new_dn {
                let rdns = dn::parse(new_dn).map_err(|e| ldap3::LdapError::AdapterInit(e.to_string()))?;
                let new_rdn = dn::format(&rdns[..1.min(rdns.len())]);
                let new_parent = dn::format(rdns.get(1..).unwrap_or(&[]));
                let old_parent = dn::parse(&dn).ok().map(|r| dn::format(r.get(1..).unwrap_or(&[])));
                let sup = if old_parent.as_deref().map(dn::norm) == Some(dn::norm(&new_parent)) { None } else { Some(new_parent.as_str()) };
                let r = ldap.with_timeout(conf.timeout).modifydn(&dn, &new_rdn, true, sup).await?;
                if r.rc != 0 {
                    return Ok(failed(&format!("rename {dn} to {new_dn}"), &r));
                }
                dn = new_dn.clone();
            }
            let mods: Vec<Mod<Vec<u8>>> = op
                .changes
                .iter()
                .map(|c| {
                    let name = c.attr.as_bytes().to_vec();
                    let vals: HashSet<Vec<u8>> = c.values.iter().map(bytes).collect();
                    match c.kind {
                        ChangeKind::Replace => Mod::Replace(name, vals),
                        ChangeKind::Add => Mod::Add(name, vals),
                        ChangeKind::Delete => Mod::Delete(name, vals),
                    }
                })
                .collect();
            if !mods.is_empty() {
                let r = ldap.with_timeout(conf.timeout).modify(&dn, mods).await?;
                if r.rc != 0 {
                    return Ok(failed(&format!("modify {dn}"), &r));
                }
            }
            Ok(OpResult::Done { anchor: op.anchor.clone(), dn: Some(dn) })
        }
        OpKind::Delete => {
            let Some(dn) = op.dn.clone() else { return Ok(OpResult::Done { anchor: op.anchor.clone(), dn: None }) };
            let r = ldap.with_timeout(conf.timeout).delete(&dn).await?;
            // Gone already counts as done.
            if r.rc != 0 && r.rc != 32 {
                return Ok(failed(&format!("delete {dn}"), &r));
            }
            Ok(OpResult::Done { anchor: op.anchor.clone(), dn: None })
        }
    }
}

pub(super) async fn export(conf: &Conf, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
    let mut ldap = session::open(conf).await?;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        match one(conf, &mut ldap, op).await {
            Ok(r) => out.push(r),
            Err(e) => {
                // The connection failed: what was done is reported; the rest stays pending.
                let e = session::said(conf, &e);
                tracing::warn!(connector = %conf.name, "export interrupted: {e}");
                out.push(OpResult::Failed(format!("connection failed: {e}")));
                while out.len() < ops.len() {
                    out.push(OpResult::Failed("not attempted: the connection failed".into()));
                }
                break;
            }
        }
    }
    let _ = ldap.unbind().await;
    Ok(out)
}
