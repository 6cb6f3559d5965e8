//! Active Directory's hashes, read the way Entra Connect reads them: MS-DRSR replication of the
//! domain naming context with a partial attribute set, incremental from a USN watermark.
use super::backend::LdapConnector;
use super::replication::Replication;
use base64::Engine as _;
use idflow_core::hash::{HashResult, HashSource, NtHash, Pull, PullRequest};
use idflow_core::{Error, Result};
use idflow_msrpc::drsr::getnc::{self, Request, Target, UsnVector};
use idflow_msrpc::drsr::{decrypt, prefix, DrsClient, DrsError, ACCESS_DENIED};
use idflow_msrpc::RpcError;
use idflow_msrpc::{guid_from_text, guid_text};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Objects per GetNCChanges page (Samba's own cap is 1,000).
const PAGE_OBJECTS: u32 = 1000;
const PAGE_BYTES: u32 = 8 * 1024 * 1024;
/// Past this many objects needing a single-object read, a full pull is cheaper.
const MAX_SINGLE_READS: usize = 200;

/// The PHS watermark kept in the metaverse: the DC's invocationId and the USN vector it
/// returned last, all three fields, echoed back as `usnvecFrom`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Watermark {
    pub naming_context: String,
    pub invocation_id: String,
    pub usn_high_obj_update: i64,
    pub usn_reserved: i64,
    pub usn_high_prop_update: i64,
}

pub(crate) struct DrsrSource {
    connector: LdapConnector,
    name: String,
    replication: Replication,
}

/// What a replication cycle brought: the objects, the DC's prefix table, the USN vector it
/// ended at and the DC's invocationId.
type Cycle = (Vec<getnc::Object>, Vec<prefix::Entry>, UsnVector, [u8; 16]);

/// The attributes asked for, and their ATTRTYPs in the request's prefix table.
struct Attrs {
    attids: Vec<u32>,
    prefix: Vec<prefix::Entry>,
}

fn attrs(secrets: bool) -> Attrs {
    let mut t = prefix::Table::default();
    let mut oids =
        vec![prefix::OBJECT_SID, prefix::OBJECT_GUID, prefix::SAM_ACCOUNT_NAME, prefix::USER_ACCOUNT_CONTROL, prefix::PWD_LAST_SET];
    if secrets {
        oids.insert(0, prefix::UNICODE_PWD);
    }
    let attids = oids.iter().filter_map(|o| t.attid(o)).collect();
    let mut entries = t.entries;
    // Samba wants the schemaInfo as the table's last entry (0xFF, revision, GUID).
    let mut schema_info = vec![0xffu8];
    schema_info.extend_from_slice(&[0u8; 20]);
    entries.push(prefix::Entry { ndx: 0, prefix: schema_info });
    Attrs { attids, prefix: entries }
}

impl DrsrSource {
    /// A request for the attribute set `a`: one page from the start, no extended operation;
    /// callers change what differs.
    fn request<'a>(c: &DrsClient, a: &'a Attrs, target: Target<'a>) -> Request<'a> {
        Request {
            dsa_dest: c.dc.ntds_dsa_guid,
            invocation_id: [0; 16],
            target,
            from: UsnVector::default(),
            flags: getnc::DRS_INIT_SYNC | getnc::DRS_WRIT_REP,
            max_objects: 1,
            max_bytes: 0,
            extended_op: 0,
            attids: &a.attids,
            prefix: &a.prefix,
        }
    }

    pub(crate) fn new(connector: LdapConnector) -> Result<Self> {
        let replication = connector.replication()?;
        let name = idflow_core::connector::Connector::name(&connector).to_string();
        Ok(DrsrSource { connector, name, replication })
    }

    fn err(&self, e: DrsError) -> Error {
        let account = self.replication.options.credentials.display();
        let m = match &e {
            DrsError::Rpc(RpcError::Denied(_)) => {
                format!("the DC refused the replication account {account}: wrong password, or the account is disabled or locked ({e})")
            }
            DrsError::Werror { code: ACCESS_DENIED, .. } => format!(
                "the replication account {account} lacks \"Replicating Directory Changes\" (DS-Replication-Get-Changes, \
                 1131f6aa-9c07-11d1-f79f-00c04fc2dcd2) on {}: grant it, together with \"Replicating Directory Changes All\" ({e})",
                self.replication.naming_context
            ),
            DrsError::Rpc(RpcError::Network(_)) => format!("MS-DRSR: {e}; nothing was delivered and the watermark did not move"),
            _ => format!("MS-DRSR: {e}"),
        };
        Error::connector_caused(&self.name, m, e)
    }

    /// A whole replication cycle from `from`: every page until the DC has no more.
    fn pull(&self, c: &mut DrsClient, a: &Attrs, mut from: UsnVector, mut invocation: [u8; 16]) -> std::result::Result<Cycle, DrsError> {
        let mut objects = Vec::new();
        let mut server_prefix = Vec::new();
        let nc = self.replication.naming_context.clone();
        let first_pull = from == UsnVector::default();
        for page in 0.. {
            let base = Self::request(c, a, Target::Dn(&nc));
            let req = Request {
                invocation_id: invocation,
                from,
                flags: base.flags | if first_pull { getnc::DRS_NEVER_SYNCED } else { 0 },
                max_objects: PAGE_OBJECTS,
                max_bytes: PAGE_BYTES,
                ..base
            };
            let r = c.get_nc_changes(&req)?;
            tracing::debug!(page, objects = r.objects.len(), more = r.more_data, "DRSGetNCChanges page");
            objects.extend(r.objects);
            if !r.prefix.is_empty() {
                server_prefix = r.prefix;
            }
            from = r.to;
            invocation = r.invocation_id;
            if !r.more_data {
                break;
            }
        }
        Ok((objects, server_prefix, from, invocation))
    }

    /// One object by GUID (EXOP_REPL_OBJ): every attribute of the set, not only what changed.
    fn single(
        &self,
        c: &mut DrsClient,
        a: &Attrs,
        guid: [u8; 16],
    ) -> std::result::Result<(Vec<getnc::Object>, Vec<prefix::Entry>), DrsError> {
        let req = Request { extended_op: getnc::EXOP_REPL_OBJ, ..Self::request(c, a, Target::Guid(guid)) };
        let r = c.get_nc_changes(&req)?;
        Ok((r.objects, r.prefix))
    }

    /// Tells apart the two rights when replication was refused: without secrets in the
    /// attribute set only "Replicating Directory Changes" is checked.
    fn which_right(&self, c: &mut DrsClient) -> Error {
        let a = attrs(false);
        let nc = self.replication.naming_context.clone();
        match c.get_nc_changes(&Self::request(c, &a, Target::Dn(&nc))) {
            Ok(_) => Error::connector(
                &self.name,
                format!(
                    "the replication account {} lacks \"Replicating Directory Changes All\" (DS-Replication-Get-Changes-All, \
                     1131f6ad-9c07-11d1-f79f-00c04fc2dcd2) on {}: without it a DC sends no password hashes",
                    self.replication.options.credentials.display(),
                    self.replication.naming_context
                ),
            ),
            Err(e) => self.err(e),
        }
    }
}

fn parse_watermark(text: &str, nc: &str) -> std::result::Result<(UsnVector, [u8; 16]), String> {
    let w: Watermark = serde_json::from_str(text).map_err(|e| format!("unreadable ({e})"))?;
    if !w.naming_context.eq_ignore_ascii_case(nc) {
        return Err(format!("it belongs to {}, not {nc}", w.naming_context));
    }
    let inv = guid_from_text(&w.invocation_id).ok_or("its invocationId is not a GUID")?;
    if w.usn_high_obj_update < 0 || w.usn_high_prop_update < 0 {
        return Err("it holds a negative USN".into());
    }
    Ok((UsnVector { high_obj_update: w.usn_high_obj_update, reserved: w.usn_reserved, high_prop_update: w.usn_high_prop_update }, inv))
}

impl HashSource for DrsrSource {
    fn read(&mut self, req: &PullRequest) -> Result<Pull> {
        let started = std::time::Instant::now();
        let a = attrs(true);
        let nc = self.replication.naming_context.clone();
        let stored = match (req.full, req.watermark) {
            (false, Some(text)) => match parse_watermark(text, &nc) {
                Ok(w) => Some(w),
                Err(m) => {
                    tracing::warn!(connector = %self.name, "the password hash sync watermark is {m}: pulling every hash again");
                    None
                }
            },
            _ => None,
        };
        // The mark is valid only against the invocationId of the DC that issued it (its nTDSDSA
        // object's); a restored DC, or another DC, gets a full pull instead of a stale mark.
        let stored = match stored {
            Some((from, inv)) if self.replication.options.host == self.replication.ldap_host => match self.connector.dsa_invocation_id() {
                Ok(current) if current == inv => Some((from, inv)),
                Ok(current) => {
                    tracing::warn!(connector = %self.name, stored = %guid_text(&inv), dc = %guid_text(&current),
                        "the DC's invocationId differs from the watermark's (a restore, or another DC): pulling every hash again");
                    None
                }
                Err(e) => {
                    tracing::debug!(connector = %self.name, "invocationId not read over LDAP ({e}); the DC's reply will tell");
                    Some((from, inv))
                }
            },
            other => other,
        };
        let mut c = DrsClient::connect(&self.replication.options).map_err(|e| self.err(e))?;
        tracing::info!(connector = %self.name, dc = %c.describe(), incremental = stored.is_some(), "replicating password hashes over MS-DRSR");
        let (from, inv) = stored.unwrap_or_default();
        let attempt = self.pull(&mut c, &a, from, inv);
        let (mut objects, mut server_prefix, to, invocation, mut complete) = match attempt {
            Ok((o, p, to, i)) if stored.is_some() && i != inv => {
                // The DC ignored the mark (it was restored, or is another DC): it sent everything.
                tracing::warn!(connector = %self.name, stored = %guid_text(&inv), dc = %guid_text(&i),
                    "the DC's invocationId differs from the watermark's: this was a full pull");
                (o, p, to, i, true)
            }
            Ok((o, p, to, i)) => (o, p, to, i, stored.is_none()),
            Err(DrsError::Werror { code: ACCESS_DENIED, .. }) => return Err(self.which_right(&mut c)),
            Err(e @ DrsError::Werror { .. }) if stored.is_some() => {
                tracing::warn!(connector = %self.name, "the DC rejected the password hash sync watermark ({e}): pulling every hash again");
                let (o, p, to, i) = self.pull(&mut c, &a, UsnVector::default(), [0; 16]).map_err(|e| self.err(e))?;
                (o, p, to, i, true)
            }
            Err(e) => return Err(self.err(e)),
        };
        let session_key = c.session_key().map_err(|e| self.err(e))?;
        let pulled_ms = started.elapsed().as_millis();

        // Incremental replies carry only changed attributes: objects whose SID did not come
        // along, and persons never delivered, are read one by one (or all again, if many).
        let anchor_of = |g: &[u8; 16]| base64::engine::general_purpose::STANDARD.encode(g);
        if !complete {
            let seen: std::collections::HashSet<String> = objects.iter().map(|o| anchor_of(&o.guid)).collect();
            let server = ServerAttids::of(&server_prefix);
            let mut single: Vec<[u8; 16]> = objects
                .iter()
                .filter(|o| server.value(o, server.unicode_pwd).is_some() && server.value(o, server.object_sid).is_none())
                .map(|o| o.guid)
                .collect();
            for w in req.wanted {
                if !seen.contains(w) {
                    if let Some(g) = base64::engine::general_purpose::STANDARD.decode(w).ok().and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                        single.push(g);
                    }
                }
            }
            if single.len() > MAX_SINGLE_READS {
                tracing::info!(connector = %self.name, objects = single.len(), "many objects to read one by one: pulling everything instead");
                let (o, p, _, _) = self.pull(&mut c, &a, UsnVector::default(), [0; 16]).map_err(|e| self.err(e))?;
                objects = o;
                server_prefix = p;
                complete = true;
            } else {
                let wanted: std::collections::HashSet<[u8; 16]> = single.iter().copied().collect();
                objects.retain(|o| !wanted.contains(&o.guid));
                for g in single {
                    match self.single(&mut c, &a, g) {
                        Ok((o, p)) => {
                            if server_prefix.is_empty() {
                                server_prefix = p;
                            }
                            objects.extend(o);
                        }
                        // Gone since (deleted): nothing to deliver.
                        Err(DrsError::Werror { code, .. }) if code != ACCESS_DENIED => {
                            tracing::debug!(object = %guid_text(&g), code, "single-object read refused");
                        }
                        Err(e) => return Err(self.err(e)),
                    }
                }
            }
        }

        let mut hashes: HashMap<String, HashResult> = HashMap::new();
        let mut key_len: Option<usize> = None;
        let server = ServerAttids::of(&server_prefix);
        for o in &objects {
            if o.dn.is_empty() || !self.connector.dn_in_scope(&o.dn) {
                continue;
            }
            let Some(enc) = server.value(o, server.unicode_pwd) else { continue };
            let result: std::result::Result<NtHash, String> = match server.value(o, server.object_sid).and_then(decrypt::rid_of) {
                Some(rid) => decrypt_with(&session_key, &mut key_len, enc, rid).map_err(|m| format!("unicodePwd of {}: {m}", o.dn)),
                None => Err(format!("{}: replicated without an objectSid, so its hash cannot be decrypted", o.dn)),
            };
            hashes.insert(anchor_of(&o.guid), result);
        }
        if complete && hashes.is_empty() {
            // An empty read is an error, never "nobody has a password".
            return Err(Error::connector(
                &self.name,
                format!("MS-DRSR returned no password hash in scope from {}: check base_dn and the replication rights", c.describe()),
            ));
        }
        let absent = if complete { Vec::new() } else { req.wanted.iter().filter(|w| !hashes.contains_key(*w)).cloned().collect() };
        let watermark = serde_json::to_string(&Watermark {
            naming_context: nc,
            invocation_id: guid_text(&invocation),
            usn_high_obj_update: to.high_obj_update,
            usn_reserved: to.reserved,
            usn_high_prop_update: to.high_prop_update,
        })
        .map_err(|e| Error::connector(&self.name, format!("watermark: {e}")))?;
        tracing::info!(connector = %self.name, objects = objects.len(), hashes = hashes.len(), complete, pulled_ms,
            decrypted_ms = started.elapsed().as_millis() - pulled_ms, "MS-DRSR pull done");
        Ok(Pull { hashes, complete, watermark: Some(watermark), absent })
    }
}

/// Decrypts with the session key. A Kerberos key longer than 16 bytes may be used whole or cut
/// to 16 (DCE/RPC's session key length), depending on the DC: the CRC32 tells which, once.
fn decrypt_with(key: &[u8], len: &mut Option<usize>, enc: &[u8], rid: u32) -> std::result::Result<NtHash, String> {
    if let Some(n) = *len {
        return decrypt::nt_hash(&key[..n], enc, rid);
    }
    let mut candidates = vec![key.len()];
    if key.len() > 16 {
        candidates.push(16);
    }
    let mut last = Err("no session key".to_string());
    for n in candidates {
        last = decrypt::nt_hash(&key[..n], enc, rid);
        if last.is_ok() {
            tracing::debug!(bytes = n, of = key.len(), "session key length that decrypts");
            *len = Some(n);
            break;
        }
    }
    last
}

/// The DC's ATTRTYPs for the attributes read, from its prefix table, worked out once per pull.
struct ServerAttids {
    unicode_pwd: Option<u32>,
    object_sid: Option<u32>,
}

impl ServerAttids {
    fn of(server_prefix: &[prefix::Entry]) -> Self {
        ServerAttids {
            unicode_pwd: prefix::attid_in(server_prefix, prefix::UNICODE_PWD),
            object_sid: prefix::attid_in(server_prefix, prefix::OBJECT_SID),
        }
    }

    /// The first value of an attribute of the object, if it came along.
    fn value<'a>(&self, o: &'a getnc::Object, attid: Option<u32>) -> Option<&'a [u8]> {
        let want = attid?;
        o.attrs.iter().find(|(a, _)| *a == want).and_then(|(_, v)| v.first()).map(|v| v.as_slice())
    }
}
