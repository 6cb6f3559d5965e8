//! The `scim` connector: a SCIM 2.0 client (RFC 7643, RFC 7644) for cloud directories.
//!
//! Discovery (`/ServiceProviderConfig`, `/ResourceTypes`), full import of users and groups
//! (paged with startIndex and count), create by POST, update by PATCH (PUT where the service
//! has no PATCH), delete; group members added and removed in batches; bearer tokens or OAuth2
//! client credentials; bounded concurrency; 429 with Retry-After, 5xx and timeouts retried with
//! exponential backoff and jitter; 409 on create adopts the existing object; 404 on delete is done.
use super::config::Settings;
use super::{http, mapping, CAPABILITIES};
use idflow_core::connector::{
    apply_changes, Capabilities, ChangeKind, Connector, ExportOp, ImportSink, ImportedObject, ObjectKey, OpKind, OpResult,
};
use idflow_core::{ConnectorConfig, Error, Result};
use serde_json::{json, Value as J};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct ScimConnector {
    name: String,
    rt: tokio::runtime::Runtime,
    client: Arc<http::Client>,
    concurrency: usize,
    member_batch: usize,
    page_size: usize,
    endpoints: Option<BTreeMap<String, String>>,
    patch: bool,
    /// Attribute names the service's /Schemas lists (core names, and `urn:...:name` for extensions).
    known: Option<std::collections::HashSet<String>>,
    warned: std::collections::HashSet<String>,
}

impl ScimConnector {
    /// Opens the connector: reads the token or client secret, builds TLS (nothing is sent yet).
    pub(crate) fn open(cfg: &ConnectorConfig, s: &Settings) -> Result<Self> {
        let bad = |m: String| Error::connector(&cfg.name, m);
        // Tokens and client secrets never end in white space: what follows one is dropped.
        let trimmed = |v: zeroize::Zeroizing<String>| zeroize::Zeroizing::new(v.trim_end().to_string());
        let auth = if let Some(o) = s.oauth.clone() {
            let secret = cfg
                .secret("oauth.client_secret", o.client_secret_env.as_deref(), o.client_secret_file.as_deref())?
                .ok_or_else(|| bad("oauth needs client_secret_env or client_secret_file".into()))?;
            http::Auth::ClientCredentials { conf: o, secret: trimmed(secret), token: tokio::sync::Mutex::new(None) }
        } else if let Some(token) = cfg.secret("token", s.token_env.as_deref(), s.token_file.as_deref())? {
            http::Auth::Bearer(trimmed(token))
        } else {
            http::Auth::None
        };
        let tls = crate::tls::client_config(&cfg.name, s.ca_file.as_deref().map(|f| cfg.resolve(f)).as_deref(), None, s.tls_insecure)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| bad(format!("runtime: {e}")))?;
        let client = http::Client::new(
            &cfg.name,
            s.url.trim_end_matches('/'),
            auth,
            tls,
            Duration::from_secs(s.timeout_seconds.max(1)),
            s.max_retries,
        )?;
        Ok(ScimConnector {
            name: cfg.name.clone(),
            rt,
            client: Arc::new(client),
            concurrency: s.concurrency.max(1),
            member_batch: s.member_batch.max(1),
            page_size: s.page_size.clamp(1, 1000),
            endpoints: None,
            patch: true,
            known: None,
            warned: Default::default(),
        })
    }

    /// What the service supports: PATCH, where users and groups live, which attributes exist.
    async fn discover(client: &http::Client) -> (BTreeMap<String, String>, bool, Option<std::collections::HashSet<String>>) {
        let mut endpoints: BTreeMap<String, String> =
            [("user", "/Users"), ("group", "/Groups")].into_iter().map(|(a, b)| (a.into(), b.into())).collect();
        let mut patch = true;
        if let Ok((200, spc)) = client.get("/ServiceProviderConfig").await {
            patch = spc["patch"]["supported"].as_bool().unwrap_or(true);
        }
        if let Ok((200, rt)) = client.get("/ResourceTypes").await {
            let list = rt["Resources"].as_array().cloned().or_else(|| rt.as_array().cloned()).unwrap_or_default();
            for r in list {
                if let (Some(n), Some(e)) = (r["name"].as_str(), r["endpoint"].as_str()) {
                    endpoints.insert(n.to_lowercase(), e.to_string());
                }
            }
        }
        let mut known = None;
        if let Ok((200, schemas)) = client.get("/Schemas").await {
            // The common attributes (RFC 7643 section 3.1) belong to no schema.
            let mut names: std::collections::HashSet<String> =
                ["id", "externalid", "meta", "schemas"].into_iter().map(String::from).collect();
            for s in schemas["Resources"].as_array().cloned().or_else(|| schemas.as_array().cloned()).unwrap_or_default() {
                let id = s["id"].as_str().unwrap_or_default();
                let core = id.starts_with("urn:ietf:params:scim:schemas:core:");
                for a in s["attributes"].as_array().into_iter().flatten() {
                    if let Some(n) = a["name"].as_str() {
                        names.insert(if core { n.to_lowercase() } else { format!("{id}:{n}").to_lowercase() });
                    }
                }
            }
            if names.len() > 4 {
                known = Some(names);
            }
        }
        (endpoints, patch, known)
    }

    fn ensure_discovered(&mut self) {
        if self.endpoints.is_none() {
            let (e, p, k) = self.rt.block_on(Self::discover(&self.client));
            tracing::debug!(connector = %self.name, endpoints = ?e, patch = p, schemas = k.is_some(), "SCIM discovery");
            self.endpoints = Some(e);
            self.patch = p;
            self.known = k;
        }
    }

    /// Warns once per attribute the rules flow but the service's /Schemas does not list.
    fn check_schema(&mut self, ops: &[ExportOp]) {
        let Some(known) = &self.known else { return };
        for op in ops {
            let paths = op.attrs.keys().chain(op.changes.iter().map(|c| &c.attr));
            for p in paths {
                let name = match mapping::parse_path(p) {
                    mapping::Path::Simple(a) | mapping::Path::Sub(a, _) | mapping::Path::Typed(a, _) => a.to_lowercase(),
                    mapping::Path::Extension(urn, a) => format!("{urn}:{a}").to_lowercase(),
                    mapping::Path::Members => "members".into(),
                };
                if !known.contains(&name) && self.warned.insert(name.clone()) {
                    tracing::warn!(connector = %self.name, attribute = %p, "the service's /Schemas does not list this attribute; it may refuse or drop it");
                }
            }
        }
    }
}

fn endpoint(endpoints: &BTreeMap<String, String>, object_type: &str) -> String {
    endpoints.get(&object_type.to_lowercase()).cloned().unwrap_or_else(|| format!("/{object_type}s"))
}

fn scim_error(status: u16, body: &J) -> String {
    let scim_type = body["scimType"].as_str().map(|t| format!(" {t}")).unwrap_or_default();
    let detail = body["detail"].as_str().unwrap_or("");
    format!("HTTP {status}{scim_type}: {detail}")
}

async fn one(
    client: Arc<http::Client>,
    endpoints: Arc<BTreeMap<String, String>>,
    patch: bool,
    member_batch: usize,
    op: ExportOp,
) -> OpResult {
    let ep = endpoint(&endpoints, &op.object_type);
    let r: std::result::Result<OpResult, String> = async {
        match op.kind {
            OpKind::Add => {
                let body = mapping::resource(&op.object_type, &op.attrs);
                let (status, resp) = client.send(reqwest::Method::POST, &ep, Some(&body), true).await?;
                match status {
                    200 | 201 => Ok(OpResult::Done { anchor: resp["id"].as_str().map(str::to_string), dn: None }),
                    409 => {
                        // It exists already: find it and adopt it, then make it what the rules say.
                        // By externalId only when idflow sends one (a hard match: what a create that landed
                        // unrecorded looks like); a userName clash with an object idflow does not own stays an error,
                        // so soft matching happens in sync, through the rules' joins, or not at all.
                        let keys: &[&str] =
                            if op.attrs.contains_key("externalId") { &["externalId"] } else { &["userName", "displayName"] };
                        let key = keys
                            .iter()
                            .find_map(|k| op.attrs.get(*k).and_then(|v| v.first()).and_then(|v| v.as_str()).map(|s| (*k, s.to_string())));
                        let Some((k, v)) = key else { return Ok(OpResult::Failed(scim_error(status, &resp))) };
                        let filter = format!("{k} eq \"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
                        let (s2, found) = client.get_query(&ep, &[("filter", filter.as_str())]).await?;
                        let ids: Vec<String> = found["Resources"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|r| r["id"].as_str().map(str::to_string))
                            .collect();
                        if s2 != 200 || ids.len() != 1 {
                            return Ok(OpResult::Failed(format!(
                                "{} (and no single existing object to adopt by {k})",
                                scim_error(status, &resp)
                            )));
                        }
                        let ops: Vec<J> =
                            op.attrs.iter().flat_map(|(p, v)| mapping::patch_ops(p, ChangeKind::Replace, v, member_batch)).collect();
                        if !ops.is_empty() {
                            let (s3, r3) = client
                                .send(
                                    reqwest::Method::PATCH,
                                    &format!("{ep}/{}", ids[0]),
                                    Some(&json!({"schemas": [mapping::PATCH_OP], "Operations": ops})),
                                    true,
                                )
                                .await?;
                            if s3 >= 300 {
                                return Ok(OpResult::Failed(format!("adopting the existing object: {}", scim_error(s3, &r3))));
                            }
                        }
                        Ok(OpResult::Done { anchor: Some(ids[0].clone()), dn: None })
                    }
                    _ => Ok(OpResult::Failed(scim_error(status, &resp))),
                }
            }
            OpKind::Update => {
                let Some(id) = op.anchor.clone() else { return Ok(OpResult::Failed("the object has no SCIM id".into())) };
                let url = format!("{ep}/{id}");
                if patch {
                    let ops: Vec<J> =
                        op.changes.iter().flat_map(|c| mapping::patch_ops(&c.attr, c.kind, &c.values, member_batch)).collect();
                    // At most member_batch operations per request.
                    for chunk in ops.chunks(member_batch) {
                        let (status, resp) = client
                            .send(reqwest::Method::PATCH, &url, Some(&json!({"schemas": [mapping::PATCH_OP], "Operations": chunk})), true)
                            .await?;
                        if status == 404 {
                            return Ok(OpResult::Failed("it is gone from the service (404); the next import notices".into()));
                        }
                        if status >= 300 {
                            return Ok(OpResult::Failed(scim_error(status, &resp)));
                        }
                    }
                } else {
                    let (status, current) = client.get(&url).await?;
                    if status != 200 {
                        return Ok(OpResult::Failed(scim_error(status, &current)));
                    }
                    let mut attrs = mapping::flatten(&current);
                    apply_changes(&mut attrs, &op.changes);
                    let (status, resp) =
                        client.send(reqwest::Method::PUT, &url, Some(&mapping::resource(&op.object_type, &attrs)), true).await?;
                    if status >= 300 {
                        return Ok(OpResult::Failed(scim_error(status, &resp)));
                    }
                }
                Ok(OpResult::Done { anchor: Some(id), dn: None })
            }
            OpKind::Delete => {
                let Some(id) = op.anchor.clone() else { return Ok(OpResult::Done { anchor: None, dn: None }) };
                let (status, resp) = client.send(reqwest::Method::DELETE, &format!("{ep}/{id}"), None, true).await?;
                match status {
                    200 | 204 | 404 => Ok(OpResult::Done { anchor: Some(id), dn: None }),
                    _ => Ok(OpResult::Failed(scim_error(status, &resp))),
                }
            }
        }
    }
    .await;
    r.unwrap_or_else(OpResult::Failed)
}

impl Connector for ScimConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        self.ensure_discovered();
        let endpoints = self.endpoints.clone().unwrap_or_default();
        let client = self.client.clone();
        let page = self.page_size;
        let name = self.name.clone();
        let objects = self.rt.block_on(async move {
            let mut out = Vec::new();
            for (object_type, key) in [("User", "user"), ("Group", "group")] {
                let ep = endpoints.get(key).cloned().unwrap_or_else(|| format!("/{object_type}s"));
                let mut start = 1usize;
                loop {
                    let (s, c) = (start.to_string(), page.to_string());
                    let (status, body) = client
                        .get_query(&ep, &[("startIndex", s.as_str()), ("count", c.as_str())])
                        .await
                        .map_err(|e| Error::connector(&name, e))?;
                    if status != 200 {
                        return Err(Error::connector(&name, format!("listing {ep}: {}", scim_error(status, &body))));
                    }
                    let resources = body["Resources"].as_array().cloned().unwrap_or_default();
                    let n = resources.len();
                    for r in resources {
                        match r["id"].as_str() {
                            Some(id) => out.push(Ok(ImportedObject {
                                anchor: Some(id.to_string()),
                                dn: None,
                                object_type: object_type.to_string(),
                                attrs: mapping::flatten(&r),
                            })),
                            // A resource without its id is a read error: the read is incomplete.
                            None => out.push(Err(format!(
                                "{ep}: a {object_type} without an id ({})",
                                r["userName"].as_str().or(r["displayName"].as_str()).unwrap_or("unnamed")
                            ))),
                        }
                    }
                    let total = body["totalResults"].as_u64().unwrap_or(0) as usize;
                    start += n;
                    if n == 0 || start > total {
                        break;
                    }
                }
            }
            Ok::<_, Error>(out)
        })?;
        for o in objects {
            match o {
                Ok(o) => sink.object(o)?,
                Err(m) => sink.error(ObjectKey { anchor: None, dn: None }, m),
            }
        }
        Ok(None)
    }

    fn delta_import(&mut self, _watermark: &str, _sink: &mut dyn ImportSink) -> Result<Option<String>> {
        Ok(None)
    }

    fn requests(&self) -> Option<usize> {
        let (reads, writes) = self.client.counts();
        Some(reads + writes)
    }

    fn export(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        self.ensure_discovered();
        self.check_schema(ops);
        let endpoints = Arc::new(self.endpoints.clone().unwrap_or_default());
        let client = self.client.clone();
        let (patch, member_batch, concurrency) = (self.patch, self.member_batch, self.concurrency);
        let ops = ops.to_vec();
        self.rt.block_on(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let mut set = tokio::task::JoinSet::new();
            for (i, op) in ops.into_iter().enumerate() {
                let (client, endpoints, sem) = (client.clone(), endpoints.clone(), sem.clone());
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    (i, one(client, endpoints, patch, member_batch, op).await)
                });
            }
            let mut results: Vec<Option<OpResult>> = Vec::new();
            while let Some(r) = set.join_next().await {
                let (i, res) = r.map_err(|e| Error::Refused(format!("an export task failed: {e}")))?;
                if results.len() <= i {
                    results.resize(i + 1, None);
                }
                results[i] = Some(res);
            }
            Ok(results.into_iter().map(|r| r.unwrap_or(OpResult::Failed("not attempted".into()))).collect())
        })
    }
}
