//! LDAP import: a paged full import, and RFC 4533 syncrepl deltas (refreshOnly with a cookie).
use super::conf::Conf;
use super::config::Flavor;
use super::entry::{self, Entry};
use super::session::{self, check};
use crate::anchor::anchor_text;
use base64::Engine as _;
use idflow_core::connector::{DeltaChange, ImportSink, ImportedObject, ObjectKey};
use idflow_core::fast_hash::FastSet;
use idflow_core::{Error, Result, Value};
use ldap3::controls::{EntryState, SyncInfo};
use ldap3::controls::{RefreshMode, SyncDone, SyncRequest, SyncState};
use ldap3::{Ldap, LdapError, Scope};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";

/// The attributes to ask for: what the rules use, what the connector needs (anchor, the
/// attributes its object-type filters test), and any configured extras. None known: all.
pub(super) fn attribute_list(conf: &Conf, wanted: &[String]) -> Vec<String> {
    if wanted.is_empty() && conf.extra_attributes.is_empty() {
        return vec!["*".into(), conf.anchor.clone()];
    }
    let mut v: Vec<String> = wanted.iter().chain(conf.extra_attributes.iter()).cloned().collect();
    v.push(conf.anchor.clone());
    v.extend(conf.types.attribute_names());
    let mut seen = HashSet::new();
    v.retain(|a| seen.insert(a.to_lowercase()));
    v
}

fn uuid_text(b: &[u8]) -> String {
    if b.len() != 16 {
        return hex::encode(b);
    }
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// An entry as an imported object; `Ok(None)` when it is of no configured type or excluded.
pub(super) fn to_object(conf: &Conf, e: Entry) -> std::result::Result<Option<ImportedObject>, (String, String)> {
    if !conf.in_scope(&e.dn) {
        return Ok(None);
    }
    let attrs = e.attrs;
    let Some(t) = conf.types.classify(&attrs) else { return Ok(None) };
    let anchor = attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&conf.anchor))
        .and_then(|(_, v)| v.first())
        .map(anchor_text)
        .ok_or_else(|| (e.dn.clone(), format!("missing anchor attribute {:?}", conf.anchor)))?;
    Ok(Some(ImportedObject { anchor: Some(anchor), dn: Some(e.dn), object_type: t.to_string(), attrs }))
}

enum Failure {
    /// The connection dropped: worth one reconnect.
    Connection(String),
    Fatal(Error),
}

fn classify(conf: &Conf, what: &str, e: LdapError) -> Failure {
    match e {
        LdapError::LdapResult { result } => Failure::Fatal(match check(conf, what, &result) {
            Err(e) => e,
            Ok(()) => Error::connector(&conf.name, format!("{what}: unexpected result")),
        }),
        e if connection_failed(&e) => Failure::Connection(format!("{what}: {}", session::said(conf, &e))),
        other => Failure::Fatal(Error::connector(&conf.name, format!("{what}: {other}"))),
    }
}

/// Whether `e` is the connection failing (no answer, dropped) rather than the directory refusing.
fn connection_failed(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. } | LdapError::EndOfStream | LdapError::OpSend { .. } | LdapError::ResultRecv { .. } | LdapError::Timeout { .. }
    )
}

/// What a connection lost a second time, after one reconnect, does to a full import.
const AGAIN_AFTER_RECONNECT: &str = " (again after a reconnect): the import is incomplete and nothing of it is kept";

/// [`connection_failed`], for the connector error an [`LdapError`] became.
fn lost_connection(e: &Error) -> bool {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<LdapError>()).is_some_and(connection_failed)
}

/// A wire fault as this import's failure: a dropped connection is worth one reconnect.
fn wire_failure(conf: &Conf, what: &str, f: super::wire::Fault) -> Failure {
    use super::wire::Fault;
    match f {
        Fault::Connection(m) => Failure::Connection(format!("{what}: {m}")),
        Fault::Refused { rc, text } => Failure::Fatal(
            session::check_code(conf, what, rc, &text)
                .err()
                .unwrap_or_else(|| Error::connector(&conf.name, format!("{what}: unexpected result"))),
        ),
        Fault::Protocol(m) => Failure::Fatal(Error::connector(&conf.name, format!("{what}: {m}"))),
    }
}

/// Reads everything below `base` by a paged search on a connection of its own (see
/// [`super::wire`]) to `addr`, the server of `ldap`, the import's ldap3 session (which took the
/// watermark and fetches AD's ranged values): all of it comes from one server.
async fn paged(
    conf: &Conf,
    ldap: &mut Ldap,
    addr: &SocketAddr,
    base: &str,
    attrs: &[String],
    sink: &mut dyn ImportSink,
    seen: &mut FastSet<String>,
) -> std::result::Result<(), Failure> {
    let what = format!("search below {base}");
    let mut wire = super::wire::open(conf, *addr).await.map_err(|f| wire_failure(conf, &what, f))?;
    let mut search =
        super::wire::Paged::start(&mut wire, base, &conf.filter, attrs, conf.page_size).await.map_err(|f| wire_failure(conf, &what, f))?;
    while let Some(mut e) = search.next(&conf.binary).await.map_err(|f| wire_failure(conf, &what, f))? {
        if conf.flavor == Flavor::Ad {
            if let Err(x) = fetch_ranges(conf, ldap, &mut e).await {
                if !connection_failed(&x) {
                    return Err(classify(conf, &what, x));
                }
                // The session for ranges idles while the search runs, and a DC closes idle
                // sessions (MaxConnIdleTime): a new one to the same server, once.
                tracing::debug!(connector = %conf.name, "the session for ranged values was lost ({x}); opening another");
                *ldap = session::open_pinned(conf, Some(*addr)).await.map_err(Failure::Fatal)?.0;
                fetch_ranges(conf, ldap, &mut e).await.map_err(|e| classify(conf, &what, e))?;
            }
        }
        match to_object(conf, e) {
            Ok(Some(o)) => {
                let key = o.anchor.clone().unwrap_or_default();
                // After a reconnect the search starts over: what was read already is skipped.
                if seen.insert(key) {
                    sink.object(o).map_err(Failure::Fatal)?;
                }
            }
            Ok(None) => {}
            Err((dn, m)) => {
                if seen.insert(format!("dn:{dn}")) {
                    sink.error(ObjectKey { anchor: None, dn: Some(dn) }, m);
                }
            }
        }
    }
    wire.close().await;
    Ok(())
}

/// AD returns at most 1,500 values of a large multi-valued attribute at a time, as
/// `member;range=0-1499`: fetch the rest (`member;range=1500-*`, ...) and put them together.
pub(super) async fn fetch_ranges(conf: &Conf, ldap: &mut Ldap, e: &mut Entry) -> std::result::Result<(), LdapError> {
    let ranged: Vec<String> = e.attrs.keys().filter(|k| k.contains(";range=")).cloned().collect();
    for key in ranged {
        let (name, range) = key.split_once(";range=").unwrap_or((key.as_str(), "0-*"));
        let name = name.to_string();
        let mut values = e.attrs.remove(&key).unwrap_or_default();
        let mut hi = range.split_once('-').map(|(_, h)| h.to_string()).unwrap_or_else(|| "*".into());
        while hi != "*" {
            let next: u64 = hi.parse().map_err(|_| LdapError::AdapterInit(format!("bad range {hi:?} in {key}")))?;
            let want = format!("{name};range={}-*", next + 1);
            let (rs, _) =
                ldap.with_timeout(conf.timeout).search(&e.dn, Scope::Base, "(objectClass=*)", vec![want.as_str()]).await?.success()?;
            let Some(first) = rs.into_iter().next() else { break };
            let part = entry::decode(first.0, &conf.binary).map_err(LdapError::AdapterInit)?;
            let Some((k, vals)) =
                part.attrs.into_iter().find(|(k, _)| k.to_lowercase().starts_with(&format!("{};range=", name.to_lowercase())))
            else {
                break;
            };
            values.extend(vals);
            hi = k.rsplit('-').next().unwrap_or("*").to_string();
        }
        tracing::debug!(connector = %conf.name, dn = %e.dn, attr = %name, values = values.len(), "range retrieval");
        e.attrs.insert(name, values);
    }
    Ok(())
}

/// The DirSync cookie that marks "now" (AD), read before a full import with only objectGUID asked for.
pub(super) async fn dirsync_cookie(conf: &Conf, ldap: &mut Ldap, base: &str) -> Result<Option<Vec<u8>>> {
    let mut cookie: Vec<u8> = Vec::new();
    loop {
        let (_, more, next) = dirsync_page(conf, ldap, base, &cookie, &["objectGUID"]).await?;
        cookie = next;
        if !more {
            return Ok(Some(cookie));
        }
    }
}

/// One DirSync round: the entries, whether more remain, and the next cookie.
pub(super) async fn dirsync_page(
    conf: &Conf,
    ldap: &mut Ldap,
    base: &str,
    cookie: &[u8],
    attrs: &[&str],
) -> Result<(Vec<Entry>, bool, Vec<u8>)> {
    let what = format!("DirSync below {base}");
    let bad = |m: String| Error::connector(&conf.name, m);
    let mut stream = ldap
        .with_controls(super::dirsync::request(super::dirsync::FLAG_ANCESTORS_FIRST, 0, cookie))
        .with_timeout(conf.timeout)
        .streaming_search(base, Scope::Subtree, &conf.filter, attrs.to_vec())
        .await
        .map_err(|e| session::failed(conf, &what, e))?;
    let mut entries = Vec::new();
    while let Some(e) = stream.next().await.map_err(|e| session::failed(conf, &what, e))? {
        if e.is_ref() || e.is_intermediate() {
            continue;
        }
        entries.push(entry::decode(e.0, &conf.binary).map_err(|m| bad(format!("{what}: {m}")))?);
    }
    let res = stream.finish().await;
    if res.rc != 0 {
        let hint = if res.rc == 50 || res.rc == 8 { " (DirSync needs the Replicating Directory Changes right)" } else { "" };
        return Err(bad(format!("{what}: result code {}{hint}: {}", res.rc, res.text)));
    }
    let ctrl = res
        .ctrls
        .iter()
        .find(|c| c.1.ctype == super::dirsync::OID)
        .and_then(|c| c.1.val.as_deref())
        .and_then(super::dirsync::parse_response);
    let (more, next) = ctrl.ok_or_else(|| bad(format!("{what}: the server sent no DirSync cookie")))?;
    Ok((entries, more, next))
}

/// Reads the syncrepl cookie that marks "now", before a full import, without reading entries:
/// a sync search that matches nothing. syncprov's cookie holds a CSN, not the filter, so a
/// later refresh with the real filter starts from this point.
pub(super) async fn sync_cookie(conf: &Conf, ldap: &mut Ldap, base: &str) -> Result<Option<Vec<u8>>> {
    let what = format!("syncrepl cookie for {base}");
    let req = SyncRequest { mode: RefreshMode::RefreshOnly, cookie: None, reload_hint: false };
    let nothing = format!("(&{}(objectClass=idflow-matches-nothing))", conf.filter);
    let mut stream = ldap
        .with_controls(req)
        .with_timeout(conf.timeout)
        .streaming_search(base, Scope::Subtree, &nothing, vec!["1.1"])
        .await
        .map_err(|e| session::failed(conf, &what, e))?;
    while let Some(_e) = stream.next().await.map_err(|e| session::failed(conf, &what, e))? {}
    let res = stream.finish().await;
    if res.rc == 32 {
        // The base DN itself is not there: say that, once, instead of blaming syncrepl.
        check(conf, &format!("search below {base}"), &res)?;
    }
    if res.rc != 0 {
        // No syncprov on this server: full imports only, with a warning.
        tracing::warn!(connector = %conf.name, rc = res.rc, "the server offers no syncrepl ({}); delta imports will be full imports", res.text);
        return Ok(None);
    }
    Ok(res.ctrls.iter().find(|c| c.1.ctype == SYNC_DONE_OID && c.1.val.is_some()).and_then(|c| c.1.parse::<SyncDone>().cookie))
}

fn encode_watermark(cookies: &BTreeMap<String, Vec<u8>>) -> String {
    let m: BTreeMap<&String, String> = cookies.iter().map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v))).collect();
    serde_json::to_string(&m).unwrap_or_default()
}

fn decode_watermark(w: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let m: BTreeMap<String, String> = serde_json::from_str(w).ok()?;
    m.into_iter().map(|(k, v)| base64::engine::general_purpose::STANDARD.decode(v).ok().map(|b| (k, b))).collect()
}

/// `read_from`: the server it reads, once connected.
pub(super) async fn full(
    conf: &Conf,
    attrs: &[String],
    sink: &mut dyn ImportSink,
    read_from: &mut Option<SocketAddr>,
) -> Result<Option<String>> {
    let (mut ldap, mut addr) = session::open_pinned(conf, None).await?;
    *read_from = Some(addr);
    // The watermark comes first: what changes while the import reads is applied again by the next delta.
    let mut cookies = BTreeMap::new();
    {
        let cookie_bases = if conf.flavor == Flavor::Ad { &conf.roots } else { &conf.bases };
        for base in cookie_bases {
            let c = match conf.flavor {
                Flavor::Openldap => sync_cookie(conf, &mut ldap, base).await?,
                Flavor::Ad => dirsync_cookie(conf, &mut ldap, base).await?,
            };
            match c {
                Some(c) => {
                    cookies.insert(base.clone(), c);
                }
                None => {
                    cookies.clear();
                    break;
                }
            }
        }
    }
    let mut seen = FastSet::default();
    for base in &conf.bases {
        let mut reconnected = false;
        loop {
            match paged(conf, &mut ldap, &addr, base, attrs, sink, &mut seen).await {
                Ok(()) => break,
                Err(Failure::Connection(m)) if !reconnected => {
                    tracing::warn!(connector = %conf.name, "{m}; reconnecting once and resuming");
                    reconnected = true;
                    // The same server: the watermark is its.
                    (ldap, addr) = session::open_pinned(conf, Some(addr)).await?;
                    *read_from = Some(addr);
                }
                Err(Failure::Connection(m)) => return Err(Error::connector(&conf.name, format!("{m}{AGAIN_AFTER_RECONNECT}"))),
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }
    let _ = ldap.unbind().await;
    let expected = if conf.flavor == Flavor::Ad { conf.roots.len() } else { conf.bases.len() };
    Ok(if cookies.len() == expected && !cookies.is_empty() { Some(encode_watermark(&cookies)) } else { None })
}

/// The objects `anchors` name, looked up after a full import that did not read them (moves.rs):
/// those found moved while it read (from a base not read yet into one read already, or on AD
/// past the pages its search had still to send), and are read now.
pub(super) async fn read_again(
    conf: &Conf,
    attrs: &[String],
    anchors: &[String],
    read_from: Option<SocketAddr>,
    sink: &mut dyn ImportSink,
) -> Result<()> {
    if anchors.is_empty() {
        return Ok(());
    }
    // The server the import read: another may not have the move, or the deletion, yet.
    let (mut ldap, _) = session::open_pinned(conf, read_from).await?;
    // A connection that drops is reopened once (to the same server) and the look-up made
    // again, as the read itself is; a second failure fails the import, and nothing is deleted.
    let found = match super::moves::by_anchor(conf, &mut ldap, attrs, anchors).await {
        Err(e) if lost_connection(&e) => {
            tracing::warn!(connector = %conf.name, "{e}; reconnecting once and looking the objects not read up again");
            (ldap, _) = session::open_pinned(conf, read_from).await?;
            super::moves::by_anchor(conf, &mut ldap, attrs, anchors).await.map_err(|e| match e {
                Error::Connector { connector, message, source } if lost_connection(&e) => {
                    Error::Connector { connector, message: format!("{message}{AGAIN_AFTER_RECONNECT}"), source }
                }
                e => e,
            })?
        }
        found => found?,
    };
    let _ = ldap.unbind().await;
    if !found.is_empty() {
        tracing::info!(connector = %conf.name, entries = found.len(), "entries the read missed (moved while it read) were read after it");
    }
    let mut found: Vec<ImportedObject> = found.into_values().collect();
    found.sort_by(|a, b| a.dn.cmp(&b.dn));
    for o in found {
        sink.object(o)?;
    }
    Ok(())
}

/// Applies the changes since the watermark. `Ok(None)` asks for a full import: the cookie is
/// unknown, expired or refused, or the server answered with a present phase (it could not say
/// what was deleted).
pub(super) async fn delta(conf: &Conf, attrs: &[String], watermark: &str, sink: &mut dyn ImportSink) -> Result<Option<String>> {
    if conf.flavor == Flavor::Ad {
        return delta_dirsync(conf, attrs, watermark, sink).await;
    }
    let Some(mut cookies) = decode_watermark(watermark) else {
        tracing::warn!(connector = %conf.name, "the delta watermark is not one idflow wrote; running a full import");
        return Ok(None);
    };
    if conf.bases.iter().any(|b| !cookies.contains_key(b)) {
        return Ok(None);
    }
    // slapd answers a cookie it cannot read with a full initial refresh, which cannot tell what
    // was deleted: a cookie that is not one slapd writes is refused here.
    if cookies.values().any(|c| !String::from_utf8_lossy(c).contains("csn=")) {
        tracing::warn!(connector = %conf.name, "the syncrepl cookie in the watermark is not valid; running a full import");
        return Ok(None);
    }
    let mut ldap = session::open(conf).await?;
    // Changes are held until every base answered: a refused cookie must leave nothing half-applied.
    let mut changes: Vec<DeltaChange> = Vec::new();
    let mut errors: Vec<(ObjectKey, String)> = Vec::new();
    for base in &conf.bases {
        let what = format!("syncrepl below {base}");
        let req = SyncRequest { mode: RefreshMode::RefreshOnly, cookie: cookies.get(base).cloned(), reload_hint: false };
        let mut stream = ldap
            .with_controls(req)
            .with_timeout(conf.timeout)
            .streaming_search(base.as_str(), Scope::Subtree, &conf.filter, attrs.to_vec())
            .await
            .map_err(|e| session::failed(conf, &what, e))?;
        let mut present_phase = false;
        let mut new_cookie: Option<Vec<u8>> = None;
        while let Some(entry) = stream.next().await.map_err(|e| session::failed(conf, &what, e))? {
            if entry.is_intermediate() {
                match ldap3::controls::parse_syncinfo(entry) {
                    SyncInfo::NewCookie(c) => new_cookie = Some(c),
                    SyncInfo::RefreshDelete { cookie, .. } => new_cookie = cookie.or(new_cookie),
                    SyncInfo::RefreshPresent { cookie, .. } => {
                        present_phase = true;
                        new_cookie = cookie.or(new_cookie);
                    }
                    SyncInfo::SyncIdSet { cookie, refresh_deletes, sync_uuids } => {
                        new_cookie = cookie.or(new_cookie);
                        if refresh_deletes {
                            for u in sync_uuids {
                                changes.push(DeltaChange::Delete(ObjectKey { anchor: Some(uuid_text(&u)), dn: None }));
                            }
                        } else {
                            present_phase = true;
                        }
                    }
                }
                continue;
            }
            if entry.is_ref() {
                continue;
            }
            let state = entry.1.iter().find(|c| c.1.ctype == SYNC_STATE_OID && c.1.val.is_some()).map(|c| c.1.parse::<SyncState>());
            let se = entry::decode(entry.0, &conf.binary).map_err(|m| Error::connector(&conf.name, format!("{what}: {m}")))?;
            match state.map(|s| (s.state, s.entry_uuid)) {
                Some((EntryState::Delete, uuid)) => {
                    changes.push(DeltaChange::Delete(ObjectKey { anchor: Some(uuid_text(&uuid)), dn: Some(se.dn) }))
                }
                Some((EntryState::Present, _)) => present_phase = true,
                Some((_, uuid)) => {
                    let dn = se.dn.clone();
                    match to_object(conf, se) {
                        Ok(Some(mut o)) => {
                            o.anchor = o.anchor.or(Some(uuid_text(&uuid)));
                            changes.push(DeltaChange::Upsert(o));
                        }
                        // Changed so that it is no longer of a configured type (or moved out of scope).
                        Ok(None) => changes.push(DeltaChange::Delete(ObjectKey { anchor: Some(uuid_text(&uuid)), dn: Some(dn) })),
                        Err((dn, m)) => errors.push((ObjectKey { anchor: Some(uuid_text(&uuid)), dn: Some(dn) }, m)),
                    }
                }
                None => {}
            }
        }
        let res = stream.finish().await;
        if res.rc == 4096 {
            tracing::warn!(connector = %conf.name, "the server asks for a full refresh (the cookie expired); running a full import");
            return Ok(None);
        }
        if res.rc != 0 {
            tracing::warn!(connector = %conf.name, rc = res.rc, "the syncrepl cookie was refused ({}); running a full import", res.text);
            return Ok(None);
        }
        if let Some(done) = res.ctrls.iter().find(|c| c.1.ctype == SYNC_DONE_OID && c.1.val.is_some()).map(|c| c.1.parse::<SyncDone>()) {
            new_cookie = done.cookie.or(new_cookie);
        }
        if present_phase {
            tracing::warn!(connector = %conf.name, "the server answered with a present phase (its change log does not reach back to the watermark); running a full import");
            return Ok(None);
        }
        if let Some(c) = new_cookie {
            cookies.insert(base.clone(), c);
        }
    }
    // An entry below two bases (one OU of include_ous inside another) is reported by both:
    // once is enough (twice would read as two objects with one anchor; a deletion confirmed
    // as a move below, then the other base's, as a move and a deletion).
    let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if let DeltaChange::Upsert(ImportedObject { anchor: Some(a), .. }) = c {
            last.insert(a.clone(), i);
        }
    }
    let mut i = 0;
    let mut deleted = HashSet::new();
    changes.retain(|c| {
        let keep = match c {
            DeltaChange::Upsert(ImportedObject { anchor: Some(a), .. }) => last.get(a) == Some(&i),
            DeltaChange::Delete(ObjectKey { anchor: Some(a), .. }) => deleted.insert(a.clone()),
            _ => true,
        };
        i += 1;
        keep
    });
    // An entry moved from one base to another is a deletion to the base it left and an entry
    // to the one it joined, in either order: it is there, and only its move is applied.
    let there: std::collections::HashSet<String> =
        changes.iter().filter_map(|c| if let DeltaChange::Upsert(o) = c { o.anchor.clone() } else { None }).collect();
    changes.retain(|c| !matches!(c, DeltaChange::Delete(k) if k.anchor.as_ref().is_some_and(|a| there.contains(a))));
    // Unless it joined a base read before it moved (moves.rs).
    if conf.bases.len() > 1 {
        super::moves::confirm_deletions(conf, &mut ldap, attrs, &mut changes).await?;
    }
    let _ = ldap.unbind().await;
    for c in changes {
        sink.change(c)?;
    }
    for (k, m) in errors {
        sink.error(k, m);
    }
    Ok(Some(encode_watermark(&cookies)))
}

/// The entry at `dn` with `attrs` (its large multi-valued ones whole), read by a search of
/// its own; `None` when it is gone.
async fn read_whole(conf: &Conf, ldap: &mut Ldap, dn: &str, attrs: &[String]) -> Result<Option<Entry>> {
    let what = format!("reading {dn}");
    let found = ldap
        .with_timeout(conf.timeout)
        .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
        .await
        .map_err(|e| session::failed(conf, &what, e))?;
    let (entries, res) = (found.0, found.1);
    // No such object (32): moved or deleted since; a later page or delta says so.
    if res.rc == 32 {
        return Ok(None);
    }
    check(conf, &what, &res)?;
    let Some(first) = entries.into_iter().next() else { return Ok(None) };
    Ok(Some(decode_whole(conf, ldap, first.0, &what).await?))
}

/// An entry a search of its own gave (`what`, for errors), decoded, with its large
/// multi-valued attributes whole (AD's ranges; other servers send none to fetch).
pub(super) async fn decode_whole(conf: &Conf, ldap: &mut Ldap, tag: ldap3::asn1::StructureTag, what: &str) -> Result<Entry> {
    let mut e = entry::decode(tag, &conf.binary).map_err(|m| Error::connector(&conf.name, format!("{what}: {m}")))?;
    fetch_ranges(conf, ldap, &mut e).await.map_err(|x| session::failed(conf, &format!("range retrieval for {}", e.dn), x))?;
    Ok(e)
}

/// AD deltas through DirSync: changed objects with their changed attributes, deletions as
/// tombstones (`isDeleted`). A cookie the DC refuses falls back to a full import.
async fn delta_dirsync(conf: &Conf, attrs: &[String], watermark: &str, sink: &mut dyn ImportSink) -> Result<Option<String>> {
    let Some(mut cookies) = decode_watermark(watermark) else {
        tracing::warn!(connector = %conf.name, "the delta watermark is not one idflow wrote; running a full import");
        return Ok(None);
    };
    if conf.roots.iter().any(|b| !cookies.contains_key(b)) {
        return Ok(None);
    }
    let mut ldap = session::open(conf).await?;
    let mut side = ldap.clone();
    let mut want: Vec<String> = attrs.iter().filter(|a| a.as_str() != "*").cloned().collect();
    // `name` changes on a rename and a move: without it DirSync would not report those.
    for a in ["objectGUID", "isDeleted", "objectClass", "name"] {
        if !want.iter().any(|w| w.eq_ignore_ascii_case(a)) {
            want.push(a.into());
        }
    }
    let want_ref: Vec<&str> = want.iter().map(String::as_str).collect();
    let mut changes: Vec<DeltaChange> = Vec::new();
    let mut errors: Vec<(ObjectKey, String)> = Vec::new();
    for base in &conf.roots {
        let mut cookie = cookies.get(base).cloned().unwrap_or_default();
        loop {
            let (entries, more, next) = match dirsync_page(conf, &mut ldap, base, &cookie, &want_ref).await {
                Ok(r) => r,
                // A directory that stopped answering fails this run (the next one tries the delta
                // again); only a refused cookie calls for a full import.
                Err(e) if lost_connection(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(connector = %conf.name, "the DirSync cookie was refused ({e}); running a full import");
                    return Ok(None);
                }
            };
            for mut e in entries {
                let guid = e.attrs.get("objectGUID").and_then(|v| v.first()).map(|g| match g {
                    Value::Str(s) => s.as_bytes().to_vec(),
                    Value::Bin(b) => b.clone(),
                    Value::Ref(r) => r.to_string().into_bytes(),
                });
                let Some(guid) = guid else { continue };
                let anchor = base64::engine::general_purpose::STANDARD.encode(&guid);
                // Text, or bytes where an admin lists isDeleted among the binary attributes.
                let deleted = e.attrs.remove("isDeleted").is_some_and(|v| {
                    v.iter().any(|x| match x {
                        Value::Str(t) => t.eq_ignore_ascii_case("TRUE"),
                        Value::Bin(b) => b.eq_ignore_ascii_case(b"TRUE"),
                        Value::Ref(_) => false,
                    })
                });
                if deleted {
                    changes.push(DeltaChange::Delete(ObjectKey { anchor: Some(anchor), dn: None }));
                    continue;
                }
                fetch_ranges(conf, &mut side, &mut e)
                    .await
                    .map_err(|x| Error::connector(&conf.name, format!("range retrieval for {}: {x}", e.dn)))?;
                let (dn, mut a) = (e.dn, e.attrs);
                a.retain(|k, _| !k.eq_ignore_ascii_case("isDeleted"));
                if !conf.in_scope(&dn) {
                    changes.push(DeltaChange::Delete(ObjectKey { anchor: Some(anchor), dn: None }));
                    continue;
                }
                let key = ObjectKey { anchor: Some(anchor.clone()), dn: Some(dn.clone()) };
                if !sink.holds(&ObjectKey { anchor: Some(anchor.clone()), dn: None })? {
                    // Not one idflow holds: new, moved into scope (DirSync sends a move as the
                    // new name alone) or back into it, or of no configured type. Read whole.
                    match read_whole(conf, &mut side, &dn, attrs).await {
                        // Its own anchor: should the DN have changed hands since, the entry
                        // read is the other's, and this one's next change tells where it went.
                        Ok(Some(whole)) => match to_object(conf, whole) {
                            Ok(Some(mut o)) => {
                                o.attrs.retain(|k, _| !k.eq_ignore_ascii_case("isDeleted"));
                                changes.push(DeltaChange::Upsert(o));
                            }
                            Ok(None) => {}
                            Err((_, m)) => errors.push((key, m)),
                        },
                        Ok(None) => {}
                        Err(e) if lost_connection(&e) => return Err(e),
                        Err(e) => errors.push((key, e.to_string())),
                    }
                    continue;
                }
                // A partial entry of one idflow holds: its type is known already unless
                // objectClass came along.
                let object_type = if a.keys().any(|k| k.eq_ignore_ascii_case("objectClass")) {
                    match conf.types.classify(&a) {
                        Some(t) => t.to_string(),
                        None => continue,
                    }
                } else {
                    String::new()
                };
                changes.push(DeltaChange::Merge(ImportedObject { anchor: Some(anchor), dn: Some(dn), object_type, attrs: a }));
            }
            cookie = next;
            if !more {
                break;
            }
        }
        cookies.insert(base.clone(), cookie);
    }
    let _ = ldap.unbind().await;
    for c in changes {
        sink.change(c)?;
    }
    for (k, m) in errors {
        sink.error(k, m);
    }
    Ok(Some(encode_watermark(&cookies)))
}
