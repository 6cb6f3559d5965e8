//! A native MS-DRSR (DRSUAPI) client: what Entra Connect uses to read password hashes from
//! Active Directory. Endpoint mapper, NTLM at packet privacy, `IDL_DRSBind`,
//! `IDL_DRSDomainControllerInfo` and `IDL_DRSGetNCChanges` (request V8, reply V6) with a partial
//! attribute set, paged while the DC has more.
pub mod decrypt;
pub mod getnc;
pub mod prefix;

use crate::ndr::{guid_text, Reader, Writer};
use crate::ntlm::Credentials;
use crate::{epm, Connection, Interface, RpcError};
use std::time::Duration;

pub const DRSUAPI: Interface = Interface {
    // e3514235-4b06-11d1-ab04-00c04fc2dcd2 v4.0
    uuid: [0x35, 0x42, 0x51, 0xe3, 0x06, 0x4b, 0xd1, 0x11, 0xab, 0x04, 0x00, 0xc0, 0x4f, 0xc2, 0xdc, 0xd2],
    major: 4,
    minor: 0,
};
/// NTDSAPI_CLIENT_GUID, which clients that are not DCs bind as.
const CLIENT_DSA: [u8; 16] = [0x1a, 0x20, 0x4d, 0xe2, 0xd6, 0x4f, 0xd1, 0x11, 0xa3, 0xda, 0x00, 0x00, 0xf8, 0x75, 0xae, 0x0d];

const EXT_BASE: u32 = 0x0000_0001;
const EXT_RESTORE_USN_OPTIMIZATION: u32 = 0x0000_0040;
const EXT_STRONG_ENCRYPTION: u32 = 0x0000_8000;
const EXT_GETCHGREQ_V6: u32 = 0x0040_0000;
const EXT_GETCHGREQ_V8: u32 = 0x0100_0000;
const EXT_GETCHGREPLY_V6: u32 = 0x0400_0000;

pub const ACCESS_DENIED: u32 = 0x2105;

/// Where and as whom to replicate.
pub struct Options {
    pub host: String,
    /// The DRSUAPI port; `None` asks the endpoint mapper.
    pub rpc_port: Option<u16>,
    pub epm_port: u16,
    pub credentials: Credentials,
    /// Kerberos instead of NTLM: the KDC, the DC's SPN and the principal.
    pub kerberos: Option<crate::kerberos::KerberosParams>,
    /// The domain's DNS name, for DRSDomainControllerInfo.
    pub domain: String,
    pub timeout: Duration,
}

#[derive(Debug)]
pub enum DrsError {
    Rpc(RpcError),
    /// A DRS call's own WERROR.
    Werror {
        call: &'static str,
        code: u32,
    },
    Protocol(String),
}

impl From<RpcError> for DrsError {
    fn from(e: RpcError) -> Self {
        DrsError::Rpc(e)
    }
}

impl std::fmt::Display for DrsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrsError::Rpc(e) => e.fmt(f),
            DrsError::Werror { call, code } => write!(f, "{call} failed: {} ({code:#x})", werror_name(*code)),
            DrsError::Protocol(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DrsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DrsError::Rpc(e) => Some(e),
            _ => None,
        }
    }
}

pub fn werror_name(code: u32) -> &'static str {
    match code {
        0x0000_0005 => "access denied",
        0x0000_0057 => "invalid parameter",
        0x0000_000e => "out of memory on the DC",
        0x2105 => "replication access was denied",
        0x20f5 => "invalid replication parameter",
        0x20f7 => "the naming context is unknown to the DC (bad DN)",
        0x2158 => "not a naming-context root",
        0x20e2 => "schema mismatch",
        0x2106 => "the DC is not ready to replicate",
        0x2108 => "the DC's replication is disabled",
        0x20fa => "the replication operation was cancelled",
        _ => "unknown error",
    }
}

/// The DC at the other end, as DRSDomainControllerInfo describes it.
#[derive(Debug, Default, Clone)]
pub struct DcInfo {
    pub dns_host_name: String,
    pub ntds_dsa_dn: String,
    pub ntds_dsa_guid: [u8; 16],
}

pub struct DrsClient {
    conn: Connection,
    handle: [u8; 20],
    pub dc: DcInfo,
    pub host: String,
}

fn extensions(epoch: u32) -> Vec<u8> {
    let mut e = Vec::with_capacity(48);
    let flags = EXT_BASE | EXT_RESTORE_USN_OPTIMIZATION | EXT_STRONG_ENCRYPTION | EXT_GETCHGREQ_V6 | EXT_GETCHGREQ_V8 | EXT_GETCHGREPLY_V6;
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&[0u8; 16]);
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&epoch.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&[0u8; 16]);
    e
}

impl DrsClient {
    /// Finds DRSUAPI, binds with NTLM at packet privacy, DRSBinds (again with the DC's
    /// replication epoch when it has one) and reads which DC answered.
    pub fn connect(o: &Options) -> Result<DrsClient, DrsError> {
        let port = match o.rpc_port {
            Some(p) => p,
            None => epm::map_tcp(&o.host, o.epm_port, &DRSUAPI, o.timeout)?,
        };
        let mut conn = Connection::connect(&o.host, port, o.timeout)?;
        match &o.kerberos {
            Some(k) => conn.bind(DRSUAPI, crate::Auth::Kerberos(k))?,
            None => conn.bind(DRSUAPI, crate::Auth::Ntlm(&o.credentials))?,
        }
        // NTLM's verdict arrives with the first sealed call: a DC that did not accept the
        // AUTHENTICATE message faults it (Samba: nca_s_proto_error; Windows: access denied).
        let (mut handle, server_flags, epoch) = Self::drs_bind(&mut conn, 0).map_err(|e| match e {
            DrsError::Rpc(RpcError::Fault(code)) if code == 0x1c01_000b || code == 5 => DrsError::Rpc(RpcError::Denied(format!(
                "{}:{port} did not accept the {} authentication of {} (RPC fault {code:#x})",
                o.host,
                if o.kerberos.is_some() { "Kerberos" } else { "NTLM" },
                o.kerberos.as_ref().map(|k| k.principal.clone()).unwrap_or_else(|| o.credentials.display())
            ))),
            e => e,
        })?;
        if epoch != 0 {
            tracing::debug!(epoch, "the DC has a replication epoch; binding again with it");
            (handle, _, _) = Self::drs_bind(&mut conn, epoch)?;
        }
        if server_flags & EXT_GETCHGREQ_V8 == 0 || server_flags & EXT_STRONG_ENCRYPTION == 0 {
            return Err(DrsError::Protocol(format!(
                "{}: the DC does not offer GetNCChanges V8 with strong encryption (extensions {server_flags:#010x})",
                o.host
            )));
        }
        let mut c = DrsClient { conn, handle, dc: DcInfo::default(), host: o.host.clone() };
        c.dc = c.domain_controller_info(&o.domain)?;
        Ok(c)
    }

    fn drs_bind(conn: &mut Connection, epoch: u32) -> Result<([u8; 20], u32, u32), DrsError> {
        let ext = extensions(epoch);
        let mut w = Writer::new();
        w.pointer();
        w.guid(&CLIENT_DSA);
        w.pointer();
        w.u32(ext.len() as u32);
        w.u32(ext.len() as u32);
        w.bytes(&ext);
        w.align(4);
        let reply = conn.call(0, &w.buf)?;
        let p = |m: String| DrsError::Protocol(format!("DRSBind reply: {m}"));
        let mut r = Reader::new(&reply);
        let (mut flags, mut epoch) = (0, 0);
        if r.pointer().map_err(p)? {
            let _max = r.u32().map_err(p)?;
            let cb = r.count(1).map_err(p)?;
            let b = r.take(cb).map_err(p)?;
            let at = |i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).unwrap_or(0);
            flags = at(0);
            epoch = at(24);
            r.align(4);
        }
        let mut handle = [0u8; 20];
        handle.copy_from_slice(r.take(20).map_err(p)?);
        let result = r.u32().map_err(p)?;
        if result != 0 {
            return Err(DrsError::Werror { call: "DRSBind", code: result });
        }
        Ok((handle, flags, epoch))
    }

    fn domain_controller_info(&mut self, domain: &str) -> Result<DcInfo, DrsError> {
        let mut w = Writer::new();
        w.bytes(&self.handle);
        w.u32(1);
        w.u32(1);
        w.pointer();
        w.u32(2);
        w.wide_string(domain);
        w.align(4);
        let reply = self.conn.call(16, &w.buf)?;
        let p = |m: String| DrsError::Protocol(format!("DRSDomainControllerInfo reply: {m}"));
        let result = crate::ndr::trailing_u32(&reply).unwrap_or(0);
        if result != 0 {
            return Err(DrsError::Werror { call: "DRSDomainControllerInfo", code: result });
        }
        let mut r = Reader::new(&reply);
        let _out_version = r.u32().map_err(p)?;
        let _arm = r.u32().map_err(p)?;
        let count = r.u32().map_err(p)?;
        if count == 0 || !r.pointer().map_err(p)? {
            return Err(DrsError::Protocol(format!("the DC knows no domain controller for {domain:?}: check the domain name")));
        }
        let n = r.count(104).map_err(p)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let mut ptrs = [false; 7];
            for q in &mut ptrs {
                *q = r.pointer().map_err(p)?;
            }
            r.take(12).map_err(p)?;
            r.take(48).map_err(p)?;
            let dsa = r.guid().map_err(p)?;
            items.push((ptrs, dsa));
        }
        let mut first = None;
        for (ptrs, dsa) in items {
            let mut strings = Vec::new();
            for present in ptrs {
                strings.push(if present { r.wide_string().map_err(p)? } else { String::new() });
            }
            let info = DcInfo { dns_host_name: strings[1].clone(), ntds_dsa_dn: strings[6].clone(), ntds_dsa_guid: dsa };
            first.get_or_insert(info);
        }
        first.ok_or_else(|| DrsError::Protocol("DRSDomainControllerInfo returned no item".into()))
    }

    /// The session key secret attributes are encrypted with.
    pub fn session_key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, DrsError> {
        Ok(self.conn.session_key()?)
    }

    /// One GetNCChanges round trip.
    pub fn get_nc_changes(&mut self, req: &getnc::Request) -> Result<getnc::Reply, DrsError> {
        let stub = getnc::encode(&self.handle, req);
        let reply = self.conn.call(3, &stub)?;
        let r = getnc::decode(&reply).map_err(|m| DrsError::Protocol(format!("DRSGetNCChanges reply: {m}")))?;
        if r.result != 0 {
            return Err(DrsError::Werror { call: "DRSGetNCChanges", code: r.result });
        }
        if r.drs_error != 0 {
            return Err(DrsError::Werror { call: "DRSGetNCChanges", code: r.drs_error });
        }
        Ok(r)
    }

    pub fn describe(&self) -> String {
        format!("{} ({}, NTDS settings {})", self.dc.dns_host_name, self.host, guid_text(&self.dc.ntds_dsa_guid))
    }
}
