//! The ldap connector's change feed. OpenLDAP: a persistent syncrepl search (RFC 4533
//! refreshAndPersist) from "now", one per search base, whose every entry is a change. Active
//! Directory: DirSync asked every `poll` for what changed since its cookie (cheap when nothing
//! changed: one small answer).
use super::backend::LdapConnector;
use super::config::Flavor;
use super::{import, session};
use idflow_core::change_feed::ChangeFeed;
use idflow_core::{Error, Result};
use ldap3::controls::{RefreshMode, SyncRequest};
use ldap3::Scope;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub(super) struct Feed {
    pub(super) connector: LdapConnector,
    pub(super) poll: Duration,
}

/// How often a blocked wait looks at the stop flag.
const TICK: Duration = Duration::from_secs(1);
/// Silence on a persistent search after which the connection is checked.
const PROBE_AFTER: Duration = Duration::from_secs(60);

impl ChangeFeed for Feed {
    fn describe(&self) -> String {
        match self.connector.conf.flavor {
            Flavor::Openldap => "syncrepl refreshAndPersist".into(),
            Flavor::Ad => format!("DirSync every {}", humantime::format_duration(self.poll)),
        }
    }

    fn watch(&mut self, changed: &(dyn Fn() + Sync), stop: &AtomicBool) -> Result<()> {
        let conf = &self.connector.conf;
        match conf.flavor {
            Flavor::Openldap => {
                let bases = conf.bases.iter().map(|b| persist(self, b, changed, stop));
                self.connector.rt.block_on(futures_util::future::try_join_all(bases)).map(|_| ())
            }
            Flavor::Ad => self.connector.rt.block_on(dirsync(self, changed, stop)),
        }
    }
}

async fn persist(feed: &Feed, base: &str, changed: &(dyn Fn() + Sync), stop: &AtomicBool) -> Result<()> {
    let conf = &feed.connector.conf;
    let what = format!("persistent syncrepl search below {base}");
    let fail = |e: ldap3::LdapError| super::session::failed(conf, &what, e);
    let mut ldap = session::open(conf).await?;
    let Some(cookie) = import::sync_cookie(conf, &mut ldap, base).await? else {
        return Err(Error::connector(&conf.name, "the server offers no syncrepl: changes are seen at the service's interval"));
    };
    let req = SyncRequest { mode: RefreshMode::RefreshAndPersist, cookie: Some(cookie), reload_hint: false };
    let mut probe = ldap.clone();
    let mut stream = ldap.with_controls(req).streaming_search(base, Scope::Subtree, &conf.filter, vec!["1.1"]).await.map_err(fail)?;
    // Watching from here: what changed before (since the last import) is for one cycle to see.
    changed();
    let mut quiet = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(TICK, stream.next()).await {
            Err(_) => {
                // A connection that died without a word (a half-open TCP connection) shows as
                // silence: after a quiet minute, a small read on the same connection must answer.
                quiet += TICK;
                if quiet >= PROBE_AFTER {
                    quiet = Duration::ZERO;
                    let r = probe.with_timeout(conf.timeout).search("", Scope::Base, "(objectClass=*)", vec!["1.1"]).await;
                    if let Err(e) = r.and_then(|r| r.success()) {
                        return Err(Error::connector(&conf.name, format!("{what}: the connection stopped answering ({e})")));
                    }
                }
                continue;
            }
            Ok(Err(e)) => return Err(fail(e)),
            Ok(Ok(None)) => {
                let res = stream.finish().await;
                return Err(Error::connector(&conf.name, format!("{what}: the server ended it (result code {}: {})", res.rc, res.text)));
            }
            Ok(Ok(Some(entry))) => {
                quiet = Duration::ZERO;
                // syncInfo messages mark phases (refreshDone, new cookies); entries are changes.
                if !entry.is_intermediate() && !entry.is_ref() {
                    changed();
                }
            }
        }
    }
    drop(stream);
    let _ = ldap.unbind().await;
    Ok(())
}

async fn dirsync(feed: &Feed, changed: &(dyn Fn() + Sync), stop: &AtomicBool) -> Result<()> {
    let conf = &feed.connector.conf;
    let mut ldap = session::open(conf).await?;
    let mut cookies = Vec::new();
    for root in &conf.roots {
        ldap.with_timeout(conf.timeout);
        cookies.push(import::dirsync_cookie(conf, &mut ldap, root).await?.unwrap_or_default());
    }
    changed();
    loop {
        let mut waited = Duration::ZERO;
        while waited < feed.poll {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let step = TICK.min(feed.poll - waited);
            tokio::time::sleep(step).await;
            waited += step;
        }
        for (root, cookie) in conf.roots.iter().zip(cookies.iter_mut()) {
            loop {
                // DirSync returns an object when one of the asked-for attributes changed: ask
                // for all (it sends only what changed, so a quiet domain costs one small answer).
                ldap.with_timeout(conf.timeout);
                let (entries, more, next) = import::dirsync_page(conf, &mut ldap, root, cookie, &[]).await?;
                *cookie = next;
                // Any entry: deletions come as tombstones below CN=Deleted Objects, and a move
                // out of scope is a change too; the delta import sorts them out.
                if !entries.is_empty() {
                    changed();
                }
                if !more {
                    break;
                }
            }
        }
    }
}
