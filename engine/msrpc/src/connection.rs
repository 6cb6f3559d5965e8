//! Connection-oriented DCE/RPC (MS-RPCE) over TCP: bind (with NTLM at packet privacy, or
//! none for the endpoint mapper), requests split into fragments, replies put back together,
//! every fragment sealed and its signature checked.
use super::kerberos::{KerberosParams, KerberosSession};
use super::ntlm::{self, Credentials, Session};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub type RpcResult<T> = std::result::Result<T, RpcError>;

/// Why a call failed, kept apart where the caller acts differently.
#[derive(Debug)]
pub enum RpcError {
    /// The connection could not be made, or broke.
    Network(String),
    /// The server refused the credentials.
    Denied(String),
    /// A DCE/RPC fault with its status code.
    Fault(u32),
    /// Anything else the server sent that makes no sense.
    Protocol(String),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Network(m) | RpcError::Denied(m) | RpcError::Protocol(m) => f.write_str(m),
            RpcError::Fault(s) => write!(f, "the server answered with RPC fault {:#010x} ({})", s, fault_name(*s)),
        }
    }
}

impl std::error::Error for RpcError {}

pub(crate) fn fault_name(status: u32) -> &'static str {
    match status {
        0x0000_0005 => "access denied",
        0x1c01_0002 => "operation number out of range",
        0x1c01_0003 => "unknown interface",
        0x1c00_0001 => "operation range error",
        0x1c01_0014 => "protocol error",
        0x1c00_001a => "context mismatch",
        0x1c00_0009 => "invalid binding handle / bad stub data",
        0x0000_06f7 => "bad stub data",
        0x0000_06d8 => "the RPC call was cancelled",
        _ => "unknown",
    }
}

/// An RPC interface: its UUID (in NDR byte order) and version.
#[derive(Clone, Copy)]
pub struct Interface {
    pub uuid: [u8; 16],
    pub major: u16,
    pub minor: u16,
}

/// NDR 2.0's transfer syntax, 8a885d04-1ceb-11c9-9fe8-08002b104860.
pub(super) const NDR_SYNTAX: [u8; 16] = [0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60];
const PTYPE_REQUEST: u8 = 0;
const PTYPE_RESPONSE: u8 = 2;
const PTYPE_FAULT: u8 = 3;
const PTYPE_BIND: u8 = 11;
const PTYPE_BIND_ACK: u8 = 12;
const PTYPE_BIND_NAK: u8 = 13;
const PTYPE_AUTH3: u8 = 16;
const FIRST_FRAG: u8 = 0x01;
const LAST_FRAG: u8 = 0x02;
/// PFC_SUPPORT_HEADER_SIGN: the PDU header and sec_trailer are covered by the checksum.
const HEADER_SIGN: u8 = 0x04;
const AUTH_WINNT: u8 = 10;
const AUTH_KERBEROS: u8 = 16;
const LEVEL_PRIVACY: u8 = 6;
const AUTH_CONTEXT: u32 = 0x0001_3579;
const MAX_FRAG: u16 = 5840;
/// The sealed stub is padded to this, so the trailer starts aligned.
const AUTH_PAD: usize = 16;
/// The largest reply we accept, whatever the server says: a bound on what we allocate.
const MAX_REPLY: usize = 256 * 1024 * 1024;

/// How a bind authenticates.
pub(crate) enum Auth<'a> {
    None,
    Ntlm(&'a Credentials),
    Kerberos(&'a KerberosParams),
}

/// The security context of a bound connection.
enum Security {
    Ntlm(Box<Session>),
    Kerberos(Box<KerberosSession>),
}

impl Security {
    fn auth_type(&self) -> u8 {
        match self {
            Security::Ntlm(_) => AUTH_WINNT,
            Security::Kerberos(_) => AUTH_KERBEROS,
        }
    }
    fn verifier_len(&self) -> usize {
        match self {
            Security::Ntlm(_) => 16,
            Security::Kerberos(k) => k.trailer_len(),
        }
    }
    /// Seals the stub in place; returns the auth verifier.
    fn seal(&mut self, header: &[u8], stub: &mut [u8], trailer: &[u8]) -> RpcResult<Vec<u8>> {
        match self {
            Security::Ntlm(s) => {
                let mut signed = Vec::with_capacity(header.len() + stub.len() + trailer.len());
                signed.extend_from_slice(header);
                signed.extend_from_slice(stub);
                signed.extend_from_slice(trailer);
                Ok(s.seal(&signed, stub).to_vec())
            }
            Security::Kerberos(k) => k.seal(header, stub, trailer).map_err(RpcError::Protocol),
        }
    }
    fn unseal(&mut self, header: &[u8], stub: &mut [u8], trailer: &[u8], verifier: &[u8]) -> RpcResult<()> {
        match self {
            Security::Ntlm(s) => s
                .unseal(stub, verifier, |clear| {
                    let mut v = Vec::with_capacity(header.len() + clear.len() + trailer.len());
                    v.extend_from_slice(header);
                    v.extend_from_slice(clear);
                    v.extend_from_slice(trailer);
                    v
                })
                .map_err(RpcError::Protocol),
            Security::Kerberos(k) => k.unseal(header, stub, trailer, verifier).map_err(RpcError::Protocol),
        }
    }
}

pub(crate) struct Connection {
    stream: TcpStream,
    peer: String,
    call_id: u32,
    max_xmit: usize,
    session: Option<Security>,
}

fn header(ptype: u8, flags: u8, frag_len: usize, auth_len: usize, call_id: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(frag_len);
    h.extend_from_slice(&[5, 0, ptype, flags, 0x10, 0, 0, 0]);
    h.extend_from_slice(&(frag_len as u16).to_le_bytes());
    h.extend_from_slice(&(auth_len as u16).to_le_bytes());
    h.extend_from_slice(&call_id.to_le_bytes());
    h
}

fn sec_trailer(auth_type: u8, pad: usize) -> [u8; 8] {
    let c = AUTH_CONTEXT.to_le_bytes();
    [auth_type, LEVEL_PRIVACY, pad as u8, 0, c[0], c[1], c[2], c[3]]
}

fn le16(b: &[u8], at: usize) -> RpcResult<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| RpcError::Protocol("a truncated RPC PDU".into()))
}
fn le32(b: &[u8], at: usize) -> RpcResult<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or_else(|| RpcError::Protocol("a truncated RPC PDU".into()))
}

impl Connection {
    pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> RpcResult<Connection> {
        let peer = format!("{host}:{port}");
        let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|e| RpcError::Network(format!("{peer}: {e}")))?.collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout)).map_err(|e| RpcError::Network(e.to_string()))?;
                    stream.set_write_timeout(Some(timeout)).map_err(|e| RpcError::Network(e.to_string()))?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Connection { stream, peer, call_id: 1, max_xmit: MAX_FRAG as usize, session: None });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(RpcError::Network(format!(
            "cannot connect to {peer}: {}",
            last.map(|e| e.to_string()).unwrap_or_else(|| "the name resolves to no address".into())
        )))
    }

    fn net(&self, what: &str, e: std::io::Error) -> RpcError {
        let m = match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".to_string(),
            std::io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
            _ => e.to_string(),
        };
        RpcError::Network(format!("{what} {}: {m}", self.peer))
    }

    fn send(&mut self, pdu: &[u8]) -> RpcResult<()> {
        self.stream.write_all(pdu).map_err(|e| self.net("sending to", e))
    }

    fn read_pdu(&mut self) -> RpcResult<Vec<u8>> {
        let mut h = [0u8; 16];
        self.stream.read_exact(&mut h).map_err(|e| self.net("reading from", e))?;
        if h[0] != 5 || h[4] != 0x10 {
            return Err(RpcError::Protocol(format!("{} does not speak DCE/RPC v5 little-endian", self.peer)));
        }
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        if len < 16 {
            return Err(RpcError::Protocol("an RPC PDU shorter than its header".into()));
        }
        let mut pdu = vec![0u8; len];
        pdu[..16].copy_from_slice(&h);
        self.stream.read_exact(&mut pdu[16..]).map_err(|e| self.net("reading from", e))?;
        Ok(pdu)
    }

    /// Binds the interface; with credentials, authenticates (NTLM or Kerberos) at packet privacy.
    pub(crate) fn bind(&mut self, iface: Interface, auth: Auth) -> RpcResult<()> {
        let mut body = Vec::with_capacity(72);
        body.extend_from_slice(&MAX_FRAG.to_le_bytes());
        body.extend_from_slice(&MAX_FRAG.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&[1, 0, 0, 0]);
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&iface.uuid);
        body.extend_from_slice(&iface.major.to_le_bytes());
        body.extend_from_slice(&iface.minor.to_le_bytes());
        body.extend_from_slice(&NDR_SYNTAX);
        body.extend_from_slice(&2u32.to_le_bytes());
        let mut krb = None;
        let (auth_type, first_token) = match &auth {
            Auth::None => (0, None),
            Auth::Ntlm(_) => (AUTH_WINNT, Some(ntlm::negotiate())),
            Auth::Kerberos(p) => {
                let mut k = KerberosSession::new(p).map_err(RpcError::Denied)?;
                let (token, _) = k.step(None).map_err(RpcError::Denied)?;
                krb = Some(k);
                (AUTH_KERBEROS, Some(token))
            }
        };
        let auth_len = first_token.as_ref().map_or(0, |n| n.len());
        let total = 16 + body.len() + if auth_len > 0 { 8 + auth_len } else { 0 };
        let call_id = self.next_call();
        let sign_header = if matches!(auth, Auth::Kerberos(_)) { HEADER_SIGN } else { 0 };
        let mut pdu = header(PTYPE_BIND, FIRST_FRAG | LAST_FRAG | sign_header, total, auth_len, call_id);
        pdu.extend_from_slice(&body);
        if let Some(n) = &first_token {
            pdu.extend_from_slice(&sec_trailer(auth_type, 0));
            pdu.extend_from_slice(n);
        }
        self.send(&pdu)?;
        let ack = self.read_pdu()?;
        match ack[2] {
            PTYPE_BIND_ACK => {}
            PTYPE_BIND_NAK => {
                let reason = le16(&ack, 16).unwrap_or(0);
                return Err(if reason == 2 || reason == 9 {
                    RpcError::Denied(format!("{} refused the bind (reason {reason}): the credentials were not accepted", self.peer))
                } else {
                    RpcError::Protocol(format!("{} refused the bind (reason {reason})", self.peer))
                });
            }
            t => return Err(RpcError::Protocol(format!("{} answered a bind with PDU type {t}", self.peer))),
        }
        let max_recv_by_server = le16(&ack, 18)? as usize;
        self.max_xmit = max_recv_by_server.clamp(1024, MAX_FRAG as usize);
        let sec_addr_len = le16(&ack, 24)? as usize;
        let results_at = (26 + sec_addr_len).div_ceil(4) * 4;
        let n_results = *ack.get(results_at).ok_or_else(|| RpcError::Protocol("a truncated bind_ack".into()))?;
        let result = le16(&ack, results_at + 4)?;
        if n_results == 0 || result != 0 {
            return Err(RpcError::Protocol(format!(
                "{} does not offer the interface {} v{}.{} (result {result})",
                self.peer,
                super::ndr::guid_text(&iface.uuid),
                iface.major,
                iface.minor
            )));
        }
        if matches!(auth, Auth::None) {
            return Ok(());
        }
        let auth_len = le16(&ack, 10)? as usize;
        if auth_len == 0 || auth_len > ack.len() {
            return Err(RpcError::Protocol(format!("{} sent no authentication token in its bind_ack", self.peer)));
        }
        let server_token = &ack[ack.len() - auth_len..];
        let (third, security) = match (auth, krb) {
            (Auth::Ntlm(creds), _) => {
                let (authenticate, session) = ntlm::authenticate(creds, server_token).map_err(RpcError::Protocol)?;
                (authenticate, Security::Ntlm(Box::new(session)))
            }
            (Auth::Kerberos(_), Some(mut k)) => {
                let (token, _done) = k.step(Some(server_token)).map_err(RpcError::Denied)?;
                k.set_header_signing(ack[3] & HEADER_SIGN != 0);
                (token, Security::Kerberos(Box::new(k)))
            }
            _ => return Err(RpcError::Protocol("no security context".into())),
        };
        let total = 16 + 4 + 8 + third.len();
        let mut pdu = header(PTYPE_AUTH3, FIRST_FRAG | LAST_FRAG, total, third.len(), call_id);
        pdu.extend_from_slice(&MAX_FRAG.to_le_bytes());
        pdu.extend_from_slice(&MAX_FRAG.to_le_bytes());
        pdu.extend_from_slice(&sec_trailer(auth_type, 0));
        pdu.extend_from_slice(&third);
        self.send(&pdu)?;
        self.session = Some(security);
        Ok(())
    }

    fn next_call(&mut self) -> u32 {
        let c = self.call_id;
        self.call_id = self.call_id.wrapping_add(1);
        c
    }

    /// The session key MS-DRSR encrypts secret attributes with: NTLM's exported session key,
    /// or the Kerberos context's key.
    pub(crate) fn session_key(&self) -> RpcResult<zeroize::Zeroizing<Vec<u8>>> {
        match &self.session {
            Some(Security::Ntlm(s)) => Ok(zeroize::Zeroizing::new(s.session_key.to_vec())),
            Some(Security::Kerberos(k)) => k.session_key().map_err(RpcError::Protocol),
            None => Err(RpcError::Protocol("the connection is not authenticated".into())),
        }
    }

    /// One call: the request's stub out, the reply's stub back.
    pub(crate) fn call(&mut self, opnum: u16, stub: &[u8]) -> RpcResult<Vec<u8>> {
        let call_id = self.next_call();
        let sealed = self.session.is_some();
        let verifier = self.session.as_ref().map_or(0, Security::verifier_len);
        // Room per fragment: header 24, and with sealing the trailer, verifier and padding.
        let room = if sealed { (self.max_xmit - 24 - 8 - verifier) / AUTH_PAD * AUTH_PAD } else { self.max_xmit - 24 };
        let mut chunks: Vec<&[u8]> = stub.chunks(room.max(16)).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        let mut remaining = stub.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut flags = 0;
            if i == 0 {
                flags |= FIRST_FRAG;
            }
            if i == last {
                flags |= LAST_FRAG;
            }
            let pad = if sealed { (AUTH_PAD - chunk.len() % AUTH_PAD) % AUTH_PAD } else { 0 };
            let auth_len = verifier;
            let total = 24 + chunk.len() + pad + if sealed { 8 + verifier } else { 0 };
            let mut pdu = header(PTYPE_REQUEST, flags, total, auth_len, call_id);
            pdu.extend_from_slice(&(remaining as u32).to_le_bytes());
            pdu.extend_from_slice(&0u16.to_le_bytes());
            pdu.extend_from_slice(&opnum.to_le_bytes());
            pdu.extend_from_slice(chunk);
            remaining -= chunk.len();
            if let Some(s) = self.session.as_mut() {
                pdu.extend(std::iter::repeat_n(0u8, pad));
                let trailer = sec_trailer(s.auth_type(), pad);
                let head = pdu[..24].to_vec();
                let sig = s.seal(&head, &mut pdu[24..], &trailer)?;
                if sig.len() != verifier {
                    return Err(RpcError::Protocol(format!("a {}-byte verifier where {verifier} were announced", sig.len())));
                }
                pdu.extend_from_slice(&trailer);
                pdu.extend_from_slice(&sig);
            }
            self.send(&pdu)?;
        }
        self.read_reply(call_id)
    }

    fn read_reply(&mut self, call_id: u32) -> RpcResult<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut pdu = self.read_pdu()?;
            let ptype = pdu[2];
            let flags = pdu[3];
            if le32(&pdu, 12)? != call_id {
                return Err(RpcError::Protocol(format!("{} answered call {} while {call_id} was pending", self.peer, le32(&pdu, 12)?)));
            }
            if ptype == PTYPE_FAULT {
                let status = le32(&pdu, 24)?;
                return Err(if status == 5 {
                    RpcError::Denied(format!("{} denied the call (access denied)", self.peer))
                } else {
                    RpcError::Fault(status)
                });
            }
            if ptype != PTYPE_RESPONSE {
                return Err(RpcError::Protocol(format!("{} answered a request with PDU type {ptype}", self.peer)));
            }
            if pdu.len() < 24 {
                return Err(RpcError::Protocol(format!("{} sent a response PDU shorter than its header", self.peer)));
            }
            let auth_len = le16(&pdu, 10)? as usize;
            let frag_len = pdu.len();
            let stub_end = if auth_len > 0 {
                frag_len
                    .checked_sub(auth_len + 8)
                    .filter(|e| *e >= 24)
                    .ok_or_else(|| RpcError::Protocol("a reply fragment with a bad auth length".into()))?
            } else {
                frag_len
            };
            match (self.session.as_mut(), auth_len) {
                (Some(s), n) if n > 0 => {
                    let pad = pdu[stub_end + 2] as usize;
                    let (head, rest) = pdu.split_at_mut(24);
                    let (stub, tail) = rest.split_at_mut(stub_end - 24);
                    let (trailer, sig) = tail.split_at(8);
                    s.unseal(head, stub, trailer, sig)?;
                    let keep =
                        stub.len().checked_sub(pad).ok_or_else(|| RpcError::Protocol("a reply fragment with a bad pad length".into()))?;
                    out.extend_from_slice(&stub[..keep]);
                }
                (Some(_), _) => return Err(RpcError::Protocol(format!("{} sent a reply fragment that is not sealed", self.peer))),
                (None, _) => out.extend_from_slice(&pdu[24..stub_end]),
            }
            if out.len() > MAX_REPLY {
                return Err(RpcError::Protocol(format!("{} sent a reply larger than {MAX_REPLY} bytes", self.peer)));
            }
            if flags & LAST_FRAG != 0 {
                return Ok(out);
            }
        }
    }
}
