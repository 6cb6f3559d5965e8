//! RADIUS (RFC 2865) as pass-through authentication's front end: Access-Request with PAP,
//! answered Access-Accept or Access-Reject with a Reply-Message. Every request must carry a
//! valid Message-Authenticator (RFC 3579, HMAC-MD5 under the client's shared secret) and every
//! answer carries one first, against Blast-RADIUS (CVE-2024-3596); a request without one, from
//! an unknown client, or that does not verify is dropped without an answer, as RFC 2865 says.
use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

pub(crate) const ACCESS_REQUEST: u8 = 1;
pub(crate) const ACCESS_ACCEPT: u8 = 2;
pub(crate) const ACCESS_REJECT: u8 = 3;
const USER_NAME: u8 = 1;
const USER_PASSWORD: u8 = 2;
const CALLING_STATION_ID: u8 = 31;
const REPLY_MESSAGE: u8 = 18;
const MESSAGE_AUTHENTICATOR: u8 = 80;
const HEADER: usize = 20;
/// RFC 2865: 4096 at most.
pub(crate) const MAX_PACKET: usize = 4096;

type HmacMd5 = hmac::Hmac<Md5>;

/// An Access-Request, verified and decoded.
pub(crate) struct Request {
    pub id: u8,
    pub authenticator: [u8; 16],
    pub user: String,
    pub password: Zeroizing<String>,
    /// Calling-Station-Id: where the user is (an address, for a VPN), when the client says.
    pub calling_station: Option<String>,
}

/// Why a packet is dropped (logged at debug; never answered).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Drop {
    Malformed(&'static str),
    NotAccessRequest,
    NoMessageAuthenticator,
    BadMessageAuthenticator,
    NoPassword,
}

/// An attribute: its type, its value, and where the value starts in the packet.
type Attribute<'p> = (u8, &'p [u8], usize);

fn attributes(body: &[u8]) -> Result<Vec<Attribute<'_>>, Drop> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let (Some(&t), Some(&l)) = (body.get(i), body.get(i + 1)) else { return Err(Drop::Malformed("truncated attribute")) };
        let l = usize::from(l);
        if l < 2 || i + l > body.len() {
            return Err(Drop::Malformed("attribute length"));
        }
        out.push((t, &body[i + 2..i + l], HEADER + i + 2));
        i += l;
    }
    Ok(out)
}

fn hmac(secret: &[u8], data: &[u8]) -> [u8; 16] {
    let mut m = <HmacMd5 as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// PAP's User-Password (RFC 2865 5.2): 16-byte blocks, each XORed with MD5(secret + the previous).
fn unhide(secret: &[u8], authenticator: &[u8; 16], hidden: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > 128 {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(hidden.len()));
    let mut prev: &[u8] = authenticator;
    for block in hidden.chunks(16) {
        let mut h = Md5::new();
        h.update(secret);
        h.update(prev);
        let b = h.finalize();
        out.extend(block.iter().zip(b.iter()).map(|(c, k)| c ^ k));
        prev = block;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Some(out)
}

/// Hides a password as a client does (the tests' client).
#[cfg(test)]
pub(crate) fn hide(secret: &[u8], authenticator: &[u8; 16], password: &[u8]) -> Vec<u8> {
    let mut padded = password.to_vec();
    padded.resize(password.len().div_ceil(16).max(1) * 16, 0);
    let mut out = Vec::with_capacity(padded.len());
    let mut prev = authenticator.to_vec();
    for block in padded.chunks(16) {
        let mut h = Md5::new();
        h.update(secret);
        h.update(&prev);
        let b = h.finalize();
        let c: Vec<u8> = block.iter().zip(b.iter()).map(|(p, k)| p ^ k).collect();
        out.extend_from_slice(&c);
        prev = c;
    }
    out
}

/// Verifies and decodes an Access-Request from a client whose secret is `secret`.
pub(crate) fn parse(packet: &[u8], secret: &[u8]) -> Result<Request, Drop> {
    if packet.len() < HEADER || packet.len() > MAX_PACKET {
        return Err(Drop::Malformed("length"));
    }
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if length < HEADER || length > packet.len() {
        return Err(Drop::Malformed("length field"));
    }
    let packet = &packet[..length];
    if packet[0] != ACCESS_REQUEST {
        return Err(Drop::NotAccessRequest);
    }
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&packet[4..20]);
    let attrs = attributes(&packet[HEADER..])?;
    let Some(&(_, ma, at)) = attrs.iter().find(|(t, _, _)| *t == MESSAGE_AUTHENTICATOR) else { return Err(Drop::NoMessageAuthenticator) };
    if ma.len() != 16 {
        return Err(Drop::BadMessageAuthenticator);
    }
    let mut zeroed = packet.to_vec();
    zeroed[at..at + 16].fill(0);
    let expected = hmac(secret, &zeroed);
    if !crate::api::same(&expected, ma) {
        return Err(Drop::BadMessageAuthenticator);
    }
    let user = attrs.iter().find(|(t, _, _)| *t == USER_NAME).map(|(_, v, _)| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
    let hidden = attrs.iter().find(|(t, _, _)| *t == USER_PASSWORD).map(|(_, v, _)| *v).ok_or(Drop::NoPassword)?;
    let plain = unhide(secret, &authenticator, hidden).ok_or(Drop::Malformed("User-Password"))?;
    let password = Zeroizing::new(String::from_utf8_lossy(&plain).into_owned());
    let calling_station = attrs.iter().find(|(t, _, _)| *t == CALLING_STATION_ID).map(|(_, v, _)| String::from_utf8_lossy(v).into_owned());
    Ok(Request { id: packet[1], authenticator, user, password, calling_station })
}

/// The answer to `req`: Message-Authenticator first (RFC 3579 3.2, computed over the answer
/// with the request's authenticator), a Reply-Message, and the Response Authenticator.
pub(crate) fn answer(code: u8, req_id: u8, req_authenticator: &[u8; 16], reply: &str, secret: &[u8]) -> Vec<u8> {
    let reply = &reply.as_bytes()[..reply.len().min(253)];
    let mut attrs = vec![MESSAGE_AUTHENTICATOR, 18];
    attrs.extend_from_slice(&[0u8; 16]);
    if !reply.is_empty() {
        attrs.push(REPLY_MESSAGE);
        attrs.push(u8::try_from(reply.len() + 2).unwrap_or(255));
        attrs.extend_from_slice(reply);
    }
    let length = u16::try_from(HEADER + attrs.len()).unwrap_or(u16::MAX);
    let mut p = vec![code, req_id];
    p.extend_from_slice(&length.to_be_bytes());
    p.extend_from_slice(req_authenticator);
    p.extend_from_slice(&attrs);
    let ma = hmac(secret, &p);
    p[HEADER + 2..HEADER + 18].copy_from_slice(&ma);
    let mut h = Md5::new();
    h.update(&p);
    h.update(secret);
    let response: [u8; 16] = h.finalize().into();
    p[4..20].copy_from_slice(&response);
    p
}

/// An Access-Request as a client builds it (the tests' client).
#[cfg(test)]
pub(crate) fn request(id: u8, authenticator: [u8; 16], user: &str, password: &str, secret: &[u8], with_ma: bool) -> Vec<u8> {
    let mut attrs = Vec::new();
    if with_ma {
        attrs.extend_from_slice(&[MESSAGE_AUTHENTICATOR, 18]);
        attrs.extend_from_slice(&[0u8; 16]);
    }
    attrs.push(USER_NAME);
    attrs.push(u8::try_from(user.len() + 2).unwrap_or(255));
    attrs.extend_from_slice(user.as_bytes());
    let hidden = hide(secret, &authenticator, password.as_bytes());
    attrs.push(USER_PASSWORD);
    attrs.push(u8::try_from(hidden.len() + 2).unwrap_or(255));
    attrs.extend_from_slice(&hidden);
    let length = u16::try_from(HEADER + attrs.len()).unwrap_or(u16::MAX);
    let mut p = vec![ACCESS_REQUEST, id];
    p.extend_from_slice(&length.to_be_bytes());
    p.extend_from_slice(&authenticator);
    p.extend_from_slice(&attrs);
    if with_ma {
        let ma = hmac(secret, &p);
        p[HEADER + 2..HEADER + 18].copy_from_slice(&ma);
    }
    p
}

/// Checks an answer as a client does: the Response Authenticator and the Message-Authenticator.
#[cfg(test)]
pub(crate) fn verify_answer(p: &[u8], req_authenticator: &[u8; 16], secret: &[u8]) -> bool {
    if p.len() < HEADER {
        return false;
    }
    let mut with_req = p.to_vec();
    with_req[4..20].copy_from_slice(req_authenticator);
    let mut h = Md5::new();
    h.update(&with_req);
    h.update(secret);
    let expected: [u8; 16] = h.finalize().into();
    if expected[..] != p[4..20] {
        return false;
    }
    let Ok(attrs) = attributes(&p[HEADER..]) else { return false };
    let Some(&(_, ma, at)) = attrs.iter().find(|(t, _, _)| *t == MESSAGE_AUTHENTICATOR) else { return false };
    let mut zeroed = with_req;
    zeroed[at..at + 16].fill(0);
    hmac(secret, &zeroed)[..] == *ma
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_and_its_answer_verifies() {
        let secret = b"s3cret";
        let auth = [7u8; 16];
        let p = request(42, auth, "ada", "correct horse battery staple!", secret, true);
        let r = parse(&p, secret).expect("parses");
        assert_eq!((r.id, r.user.as_str(), r.password.as_str()), (42, "ada", "correct horse battery staple!"));
        let a = answer(ACCESS_ACCEPT, r.id, &r.authenticator, "success", secret);
        assert!(verify_answer(&a, &auth, secret));
        assert!(!verify_answer(&a, &auth, b"other"));
        assert_eq!(a[22..38].len(), 16, "Message-Authenticator is the first attribute");
    }

    #[test]
    fn requests_without_or_with_a_wrong_message_authenticator_are_dropped() {
        let auth = [1u8; 16];
        assert_eq!(parse(&request(1, auth, "ada", "pw", b"s", false), b"s").err(), Some(Drop::NoMessageAuthenticator));
        assert_eq!(parse(&request(1, auth, "ada", "pw", b"s", true), b"t").err(), Some(Drop::BadMessageAuthenticator));
        let mut p = request(1, auth, "ada", "pw", b"s", true);
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(parse(&p, b"s").err(), Some(Drop::BadMessageAuthenticator), "a changed byte");
        assert_eq!(parse(&p[..10], b"s").err(), Some(Drop::Malformed("length")));
    }

    #[test]
    fn pap_hides_as_rfc_2865_says() {
        // RFC 2865 7.1's example: secret "xyzzy5461", password "arctangent".
        let auth: [u8; 16] = [0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4, 0x22, 0x7a];
        let hidden = hide(b"xyzzy5461", &auth, b"arctangent");
        assert_eq!(hex::encode(&hidden), "0dbe708d93d413ce3196e43f782a0aee");
        assert_eq!(unhide(b"xyzzy5461", &auth, &hidden).expect("unhides").as_slice(), b"arctangent");
    }
}
