//! Active Directory's DirSync control (1.2.840.113556.1.4.841): the request and response values
//! in BER, by hand (three fields each), and the delta import built on it.
use ldap3::controls::RawControl;

pub(super) const OID: &str = "1.2.840.113556.1.4.841";
/// Return parents before children.
pub(super) const FLAG_ANCESTORS_FIRST: i64 = 0x0000_0800;

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = (len as u64).to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut bytes: Vec<u8> = v.to_be_bytes().to_vec();
    // Minimal two's complement.
    while bytes.len() > 1 && ((bytes[0] == 0 && bytes[1] & 0x80 == 0) || (bytes[0] == 0xff && bytes[1] & 0x80 != 0)) {
        bytes.remove(0);
    }
    out.push(0x02);
    push_len(out, bytes.len());
    out.extend(bytes);
}

/// The request control: flags, the most bytes to return (0: the server's default), the cookie.
pub(super) fn request(flags: i64, max_bytes: i64, cookie: &[u8]) -> RawControl {
    let mut body = Vec::new();
    push_int(&mut body, flags);
    push_int(&mut body, max_bytes);
    body.push(0x04);
    push_len(&mut body, cookie.len());
    body.extend_from_slice(cookie);
    let mut val = vec![0x30];
    push_len(&mut val, body.len());
    val.extend(body);
    RawControl { ctype: OID.to_string(), crit: true, val: Some(val) }
}

/// A BER length from untrusted bytes: checked arithmetic throughout, so a hostile length (nine
/// bytes of 0xff) is `None`, never an overflow.
fn read_len(b: &[u8], i: &mut usize) -> Option<usize> {
    let first = *b.get(*i)?;
    *i = i.checked_add(1)?;
    if first < 0x80 {
        return Some(first as usize);
    }
    let n = (first & 0x7f) as usize;
    if n > std::mem::size_of::<usize>() {
        return None;
    }
    let mut len = 0usize;
    for _ in 0..n {
        len = len.checked_mul(256)?.checked_add(*b.get(*i)? as usize)?;
        *i = i.checked_add(1)?;
    }
    Some(len)
}

fn read_tlv<'a>(b: &'a [u8], i: &mut usize, tag: u8) -> Option<&'a [u8]> {
    if *b.get(*i)? != tag {
        return None;
    }
    *i = i.checked_add(1)?;
    let len = read_len(b, i)?;
    let end = i.checked_add(len)?;
    let v = b.get(*i..end)?;
    *i = end;
    Some(v)
}

/// The response: (more results to fetch, the new cookie). `None` when the value is malformed.
pub(super) fn parse_response(val: &[u8]) -> Option<(bool, Vec<u8>)> {
    let mut i = 0;
    let seq = read_tlv(val, &mut i, 0x30)?;
    let mut j = 0;
    let more = read_tlv(seq, &mut j, 0x02)?;
    let _unused = read_tlv(seq, &mut j, 0x02)?;
    let cookie = read_tlv(seq, &mut j, 0x04)?;
    Some((more.iter().any(|b| *b != 0), cookie.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_shapes() {
        let c = request(FLAG_ANCESTORS_FIRST, 0, b"abc");
        assert_eq!(c.val.as_deref(), Some(&[0x30, 0x0c, 0x02, 0x02, 0x08, 0x00, 0x02, 0x01, 0x00, 0x04, 0x03, b'a', b'b', b'c'][..]));
        let resp = [0x30, 0x0a, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x02, 0xde, 0xad];
        assert_eq!(parse_response(&resp), Some((true, vec![0xde, 0xad])));
        assert_eq!(parse_response(&[0x30, 0x02, 0x02]), None);
        // Hostile lengths: too many length bytes, a length past the end, one that would overflow.
        for hostile in [
            &[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02],
        ] {
            assert_eq!(parse_response(hostile), None);
        }
        let mut i = usize::MAX - 1;
        assert_eq!(read_tlv(&[0x04, 0x01, 0x00], &mut i, 0x04), None);
        let long = request(0, 0, &vec![7u8; 300]);
        let v = long.val.expect("value");
        assert_eq!(&v[..4], &[0x30, 0x82, 0x01, 0x36]);
    }
}
