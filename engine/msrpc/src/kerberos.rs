//! Kerberos for DCE/RPC (RPC_C_AUTHN_GSS_KERBEROS, DCE style) through the `sspi` crate: an
//! AS/TGS exchange with the KDC over TCP, the AP-REQ / AP-REP / AP-REP legs of the bind, and
//! RFC 4121 wrap tokens sealing each fragment with the PDU header and sec_trailer checksummed.
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, CredentialsBuffers, DataRepresentation, EncryptionFlags, Kerberos,
    KerberosConfig, NetworkRequest, SecurityBuffer, SecurityBufferFlags, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl, Username,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use zeroize::Zeroizing;

/// Where the KDC is and what to ask it for.
pub struct KerberosParams {
    /// `user@REALM`.
    pub principal: String,
    pub password: Zeroizing<String>,
    /// `host:port` of the KDC.
    pub kdc: String,
    /// The service principal of the DC, e.g. `host/dc1.example.test`.
    pub spn: String,
    pub timeout: Duration,
}

/// The KDC over TCP: the request already carries its length prefix; so does the answer.
struct Kdc {
    timeout: Duration,
}

impl sspi::network_client::NetworkClient for Kdc {
    fn send(&self, request: &NetworkRequest) -> sspi::Result<Vec<u8>> {
        let err = |m: String| sspi::Error::new(sspi::ErrorKind::NoAuthenticatingAuthority, m);
        let host = request.url.host_str().unwrap_or_default().to_string();
        let port = request.url.port().unwrap_or(88);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map_err(|e| err(format!("KDC {host}:{port}: {e}")))?
            .next()
            .ok_or_else(|| err(format!("KDC {host}:{port}: no address")))?;
        let mut s =
            TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| err(format!("cannot connect to the KDC {host}:{port}: {e}")))?;
        let _ = s.set_read_timeout(Some(self.timeout));
        s.write_all(&request.data).map_err(|e| err(format!("KDC {host}:{port}: {e}")))?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(|e| err(format!("KDC {host}:{port}: {e}")))?;
        let n = u32::from_be_bytes(len) as usize;
        if n > 1 << 20 {
            return Err(err(format!("KDC {host}:{port} sent a {n}-byte answer")));
        }
        let mut out = vec![0u8; 4 + n];
        out[..4].copy_from_slice(&len);
        s.read_exact(&mut out[4..]).map_err(|e| err(format!("KDC {host}:{port}: {e}")))?;
        Ok(out)
    }
}

pub(crate) struct KerberosSession {
    ctx: Kerberos,
    creds: Option<CredentialsBuffers>,
    spn: String,
    kdc: Kdc,
    trailer: usize,
    /// Header signing negotiated at bind: the PDU header and sec_trailer are checksummed too.
    header_signing: bool,
}

fn flags() -> ClientRequestFlags {
    ClientRequestFlags::MUTUAL_AUTH
        | ClientRequestFlags::USE_DCE_STYLE
        | ClientRequestFlags::CONFIDENTIALITY
        | ClientRequestFlags::INTEGRITY
        | ClientRequestFlags::SEQUENCE_DETECT
        | ClientRequestFlags::REPLAY_DETECT
}

impl KerberosSession {
    pub(crate) fn new(p: &KerberosParams) -> Result<Self, String> {
        let url = url::Url::parse(&format!("tcp://{}", p.kdc)).map_err(|e| format!("kdc {:?}: {e}", p.kdc))?;
        let mut ctx = Kerberos::new_client_from_config(KerberosConfig {
            kdc_resolution: sspi::KdcResolution::KdcUrl(Some(url)),
            client_computer_name: "idflow".into(),
        })
        .map_err(|e| format!("Kerberos: {e}"))?;
        let username = Username::parse(&p.principal).map_err(|e| format!("principal {:?}: {e}", p.principal))?;
        let identity = AuthIdentity { username, password: p.password.to_string().into() };
        let acq = ctx
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&sspi::Credentials::AuthIdentity(identity))
            .execute(&mut ctx)
            .map_err(|e| format!("Kerberos credentials: {e}"))?;
        Ok(KerberosSession {
            ctx,
            creds: acq.credentials_handle,
            spn: p.spn.clone(),
            kdc: Kdc { timeout: p.timeout },
            trailer: 76,
            header_signing: false,
        })
    }

    /// One leg: the server's token in (none for the first), ours out; `done` once established.
    pub(crate) fn step(&mut self, input: Option<&[u8]>) -> Result<(Vec<u8>, bool), String> {
        let mut input_bufs = vec![SecurityBuffer::new(input.map(<[u8]>::to_vec).unwrap_or_default(), BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let spn = self.spn.clone();
        let mut builder = self
            .ctx
            .initialize_security_context()
            .with_credentials_handle(&mut self.creds)
            .with_context_requirements(flags())
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&spn)
            .with_output(&mut output)
            .with_input(&mut input_bufs);
        let result = self
            .ctx
            .initialize_security_context_impl(&mut builder)
            .map_err(|e| format!("Kerberos: {e}"))?
            .resolve_with_client(&self.kdc)
            .map_err(|e| format!("Kerberos: {e}"))?;
        let token = output.pop().map(|b| b.buffer).unwrap_or_default();
        let done = matches!(result.status, SecurityStatus::Ok | SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue);
        if done {
            if let Ok(sizes) = self.ctx.query_context_sizes() {
                self.trailer = sizes.security_trailer as usize;
            }
        }
        Ok((token, done))
    }

    pub(crate) fn set_header_signing(&mut self, on: bool) {
        self.header_signing = on;
    }

    pub(crate) fn trailer_len(&self) -> usize {
        self.trailer
    }

    /// The context's session key (the acceptor's subkey): what MS-DRSR encrypts secrets with.
    pub(crate) fn session_key(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let k = self.ctx.query_context_session_key().map_err(|e| format!("Kerberos session key: {e}"))?;
        Ok(Zeroizing::new(k.session_key.as_ref().clone()))
    }

    /// The buffers of one fragment: header and trailer checksummed (when header signing was
    /// negotiated), the stub encrypted in place, the wrap token.
    fn buffers<'a>(&self, h: &'a mut [u8], stub: &'a mut [u8], t: &'a mut [u8], token: &'a mut [u8]) -> Vec<SecurityBufferRef<'a>> {
        if self.header_signing {
            vec![
                SecurityBufferRef::data_buf(h).with_flags(SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM),
                SecurityBufferRef::data_buf(stub),
                SecurityBufferRef::data_buf(t).with_flags(SecurityBufferFlags::SECBUFFER_READONLY_WITH_CHECKSUM),
                SecurityBufferRef::token_buf(token),
            ]
        } else {
            vec![SecurityBufferRef::data_buf(stub), SecurityBufferRef::token_buf(token)]
        }
    }

    /// Seals `stub` in place and returns the wrap token.
    pub(crate) fn seal(&mut self, header: &[u8], stub: &mut [u8], trailer: &[u8]) -> Result<Vec<u8>, String> {
        let (mut h, mut t) = (header.to_vec(), trailer.to_vec());
        let mut token = vec![0u8; self.trailer];
        let mut msg = self.buffers(&mut h, stub, &mut t, &mut token);
        self.ctx.encrypt_message(EncryptionFlags::empty(), &mut msg).map_err(|e| format!("Kerberos wrap: {e}"))?;
        let n = msg.last().map_or(0, |b| b.data().len());
        drop(msg);
        token.truncate(n);
        Ok(token)
    }

    pub(crate) fn unseal(&mut self, header: &[u8], stub: &mut [u8], trailer: &[u8], token: &[u8]) -> Result<(), String> {
        let (mut h, mut t, mut tok) = (header.to_vec(), trailer.to_vec(), token.to_vec());
        let mut msg = self.buffers(&mut h, stub, &mut t, &mut tok);
        self.ctx.decrypt_message(&mut msg).map_err(|e| format!("a reply fragment failed its Kerberos integrity check: {e}"))?;
        Ok(())
    }
}
