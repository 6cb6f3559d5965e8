//! LEB128 variable-length unsigned integers: seven bits a byte, least significant first, the
//! high bit set on every byte but the last. Used where idflow lays out bytes of its own (the
//! store's packed values, a plan's changes held while it is made).

/// `v` appended to `out` (one byte below 128, at most ten).
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The number `b` starts with, and the bytes after it; `None` when `b` ends inside it or it is
/// longer than ten bytes.
pub fn get(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_a_cut_one_does_not_read() {
        for v in [0, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put(&mut b, v);
            b.push(0xAA);
            assert_eq!(get(&b), Some((v, &[0xAA][..])), "{v}");
            assert_eq!(get(&b[..b.len() - 2]), None, "{v} cut");
        }
        assert_eq!(get(&[0x80; 11]), None, "longer than ten bytes");
        let mut b = Vec::new();
        put(&mut b, 300);
        assert_eq!(b, [0xAC, 0x02]);
    }
}
