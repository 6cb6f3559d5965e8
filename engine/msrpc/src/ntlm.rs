//! NTLMSSP (MS-NLMP) for DCE/RPC at packet privacy: NTLMv2 responses, extended session
//! security, 128-bit key exchange, and per-fragment sealing and signing. The password, the
//! NT hash derived from it and every key are wiped when dropped; none is ever printed.
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use rc4::{Rc4, StreamCipher};
use zeroize::{Zeroize, Zeroizing};

type HmacMd5 = Hmac<Md5>;

const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_SIGN: u32 = 0x0000_0010;
const NEGOTIATE_SEAL: u32 = 0x0000_0020;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const ALWAYS_SIGN: u32 = 0x0000_8000;
const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
const TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const KEY_EXCH: u32 = 0x4000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// What idflow asks for: sealing needs all of SIGN, SEAL, extended session security, 128-bit
/// keys and key exchange.
pub(crate) const FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_SIGN
    | NEGOTIATE_SEAL
    | NEGOTIATE_NTLM
    | ALWAYS_SIGN
    | EXTENDED_SESSION_SECURITY
    | TARGET_INFO
    | NEGOTIATE_128
    | KEY_EXCH
    | NEGOTIATE_56;
const REQUIRED: u32 = NEGOTIATE_SIGN | NEGOTIATE_SEAL | EXTENDED_SESSION_SECURITY | NEGOTIATE_128 | KEY_EXCH;

/// An account for NTLM: `DOMAIN\user`, `user@dns.domain` or a bare name with a domain.
pub struct Credentials {
    pub user: String,
    pub domain: String,
    pub password: Zeroizing<String>,
}

impl Credentials {
    pub fn parse(account: &str, default_domain: &str, password: Zeroizing<String>) -> Self {
        if let Some((d, u)) = account.split_once('\\') {
            Credentials { user: u.to_string(), domain: d.to_string(), password }
        } else if account.contains('@') {
            Credentials { user: account.to_string(), domain: String::new(), password }
        } else {
            Credentials { user: account.to_string(), domain: default_domain.to_string(), password }
        }
    }

    /// How the account is named in messages (never with the password).
    pub fn display(&self) -> String {
        if self.domain.is_empty() {
            self.user.clone()
        } else {
            format!("{}\\{}", self.domain, self.user)
        }
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = <HmacMd5 as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn rc4(key: &[u8; 16]) -> Rc4 {
    Rc4::new_from_slice(key).expect("RC4 takes a 16-byte key")
}

/// The NEGOTIATE message (no domain or workstation given).
pub(crate) fn negotiate() -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(b"NTLMSSP\0");
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&FLAGS.to_le_bytes());
    m.extend_from_slice(&[0u8; 16]);
    m
}

struct Challenge {
    flags: u32,
    server_challenge: [u8; 8],
    target_info: Vec<u8>,
    timestamp: Option<[u8; 8]>,
}

fn field(msg: &[u8], at: usize) -> Option<&[u8]> {
    let len = u16::from_le_bytes([*msg.get(at)?, *msg.get(at + 1)?]) as usize;
    let off = u32::from_le_bytes([*msg.get(at + 4)?, *msg.get(at + 5)?, *msg.get(at + 6)?, *msg.get(at + 7)?]) as usize;
    msg.get(off..off.checked_add(len)?)
}

fn parse_challenge(msg: &[u8]) -> Result<Challenge, String> {
    if msg.len() < 48 || &msg[..8] != b"NTLMSSP\0" || msg[8..12] != 2u32.to_le_bytes() {
        return Err("the server's NTLM challenge is malformed".into());
    }
    let flags = u32::from_le_bytes([msg[20], msg[21], msg[22], msg[23]]);
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(&msg[24..32]);
    let target_info = field(msg, 40).ok_or("the server's NTLM challenge has a bad target-info field")?.to_vec();
    // MsvAvTimestamp (7), when the server sends one.
    let mut timestamp = None;
    let mut i = 0;
    while i + 4 <= target_info.len() {
        let id = u16::from_le_bytes([target_info[i], target_info[i + 1]]);
        let len = u16::from_le_bytes([target_info[i + 2], target_info[i + 3]]) as usize;
        if id == 0 || i + 4 + len > target_info.len() {
            break;
        }
        if id == 7 && len == 8 {
            let mut t = [0u8; 8];
            t.copy_from_slice(&target_info[i + 4..i + 12]);
            timestamp = Some(t);
        }
        i += 4 + len;
    }
    Ok(Challenge { flags, server_challenge, target_info, timestamp })
}

/// The keys of one authenticated association.
pub(crate) struct Session {
    client_sign: Zeroizing<[u8; 16]>,
    server_sign: Zeroizing<[u8; 16]>,
    client_seal: Rc4,
    server_seal: Rc4,
    client_seq: u32,
    server_seq: u32,
    /// The exported session key: what MS-DRSR encrypts secret attributes with.
    pub session_key: Zeroizing<[u8; 16]>,
}

/// Answers the server's CHALLENGE: the AUTHENTICATE message and the session's keys.
pub(crate) fn authenticate(creds: &Credentials, challenge: &[u8]) -> Result<(Vec<u8>, Session), String> {
    let ch = parse_challenge(challenge)?;
    let flags = FLAGS & ch.flags;
    if flags & REQUIRED != REQUIRED {
        return Err(format!(
            "the server does not offer NTLM sealing with extended session security and 128-bit keys (flags {:#010x})",
            ch.flags
        ));
    }
    let mut nt_hash = Zeroizing::new([0u8; 16]);
    {
        use md4::Digest as _;
        let mut pw = Zeroizing::new(utf16(&creds.password));
        nt_hash.copy_from_slice(&md4::Md4::digest(pw.as_slice()));
        pw.zeroize();
    }
    let identity = utf16(&format!("{}{}", creds.user.to_uppercase(), creds.domain));
    let ntowf = Zeroizing::new(hmac_md5(nt_hash.as_slice(), &[&identity]));
    let mut client_challenge = [0u8; 8];
    getrandom::fill(&mut client_challenge).map_err(|e| format!("no randomness: {e}"))?;
    let timestamp = ch.timestamp.unwrap_or_else(|| {
        let since_1601 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() / 100 + 116_444_736_000_000_000)
            .unwrap_or(0) as u64;
        since_1601.to_le_bytes()
    });
    let mut blob = Vec::with_capacity(32 + ch.target_info.len());
    blob.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    blob.extend_from_slice(&timestamp);
    blob.extend_from_slice(&client_challenge);
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(&ch.target_info);
    blob.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(ntowf.as_slice(), &[&ch.server_challenge, &blob]);
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(&blob);
    let lm_response = if ch.timestamp.is_some() {
        vec![0u8; 24]
    } else {
        let mut r = hmac_md5(ntowf.as_slice(), &[&ch.server_challenge, &client_challenge]).to_vec();
        r.extend_from_slice(&client_challenge);
        r
    };
    let key_exchange_key = Zeroizing::new(hmac_md5(ntowf.as_slice(), &[&proof]));
    let mut exported = Zeroizing::new([0u8; 16]);
    getrandom::fill(exported.as_mut_slice()).map_err(|e| format!("no randomness: {e}"))?;
    let mut encrypted_key = *exported;
    rc4(&key_exchange_key).apply_keystream(&mut encrypted_key);

    let domain = utf16(&creds.domain);
    let user = utf16(&creds.user);
    let workstation = utf16("IDFLOW");
    let payloads: [&[u8]; 6] = [&lm_response, &nt_response, &domain, &user, &workstation, &encrypted_key];
    let mut msg = Vec::with_capacity(64 + payloads.iter().map(|p| p.len()).sum::<usize>());
    msg.extend_from_slice(b"NTLMSSP\0");
    msg.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = 64u32;
    for p in payloads {
        msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
        msg.extend_from_slice(&(p.len() as u16).to_le_bytes());
        msg.extend_from_slice(&offset.to_le_bytes());
        offset += p.len() as u32;
    }
    msg.extend_from_slice(&flags.to_le_bytes());
    for p in payloads {
        msg.extend_from_slice(p);
    }
    encrypted_key.zeroize();

    let derive = |magic: &[u8]| Zeroizing::new(md5(&[exported.as_slice(), magic]));
    let client_sign = derive(b"session key to client-to-server signing key magic constant\0");
    let server_sign = derive(b"session key to server-to-client signing key magic constant\0");
    let client_seal_key = derive(b"session key to client-to-server sealing key magic constant\0");
    let server_seal_key = derive(b"session key to server-to-client sealing key magic constant\0");
    let session = Session {
        client_sign,
        server_sign,
        client_seal: rc4(&client_seal_key),
        server_seal: rc4(&server_seal_key),
        client_seq: 0,
        server_seq: 0,
        session_key: exported,
    };
    Ok((msg, session))
}

impl Session {
    /// Seals `data` in place and returns the 16-byte signature over `signed` (the whole PDU
    /// with the data still in clear, without the signature).
    pub(crate) fn seal(&mut self, signed: &[u8], data: &mut [u8]) -> [u8; 16] {
        let seq = self.client_seq.to_le_bytes();
        let mac = hmac_md5(self.client_sign.as_slice(), &[&seq, signed]);
        self.client_seal.apply_keystream(data);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&mac[..8]);
        self.client_seal.apply_keystream(&mut checksum);
        let mut sig = [0u8; 16];
        sig[..4].copy_from_slice(&1u32.to_le_bytes());
        sig[4..12].copy_from_slice(&checksum);
        sig[12..].copy_from_slice(&seq);
        self.client_seq = self.client_seq.wrapping_add(1);
        sig
    }

    /// Unseals `data` in place; `signed` builds the signed bytes from the clear data.
    pub(crate) fn unseal(&mut self, data: &mut [u8], signature: &[u8], signed: impl FnOnce(&[u8]) -> Vec<u8>) -> Result<(), String> {
        if signature.len() != 16 {
            return Err(format!("a reply fragment carries a {}-byte NTLM signature", signature.len()));
        }
        self.server_seal.apply_keystream(data);
        let seq = self.server_seq.to_le_bytes();
        let mac = hmac_md5(self.server_sign.as_slice(), &[&seq, &signed(data)]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&signature[4..12]);
        self.server_seal.apply_keystream(&mut checksum);
        if checksum != mac[..8] || signature[12..16] != seq {
            return Err("a reply fragment failed its NTLM signature check (tampered, or out of sequence)".into());
        }
        self.server_seq = self.server_seq.wrapping_add(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_forms() {
        let pw = || Zeroizing::new(String::from("x"));
        let c = Credentials::parse("EXAMPLE\\repl", "OTHER", pw());
        assert_eq!((c.user.as_str(), c.domain.as_str()), ("repl", "EXAMPLE"));
        let c = Credentials::parse("repl@example.test", "EXAMPLE", pw());
        assert_eq!((c.user.as_str(), c.domain.as_str()), ("repl@example.test", ""));
        let c = Credentials::parse("repl", "EXAMPLE", pw());
        assert_eq!(c.display(), "EXAMPLE\\repl");
    }

    /// MS-NLMP 4.2.4: NTOWFv2 of User / Domain / Password.
    #[test]
    fn ntowfv2_matches_ms_nlmp() {
        use md4::Digest as _;
        let nt = md4::Md4::digest(utf16("Password"));
        let k = hmac_md5(&nt, &[&utf16("USERDomain")]);
        assert_eq!(hex::encode(k), "0c868a403bfd7a93a3001ef22ef02e3f");
    }
}
