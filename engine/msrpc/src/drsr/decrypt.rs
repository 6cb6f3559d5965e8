//! Secret attributes as MS-DRSR sends them (4.1.10.6.12, 5.16.6): a 16-byte salt, then RC4
//! under MD5(session key ‖ salt) of a CRC32 and the value; for unicodePwd the value is the NT
//! hash under two DES keys derived from the account's RID.
use des::cipher::{Array, BlockCipherDecrypt, KeyInit};
use idflow_core::hash::NtHash;
use md5::{Digest, Md5};
use rc4::{Rc4, StreamCipher};
use zeroize::{Zeroize, Zeroizing};

/// The RID: the last sub-authority of a binary SID.
pub fn rid_of(sid: &[u8]) -> Option<u32> {
    if sid.len() < 12 || sid.len() != 8 + 4 * sid[1] as usize {
        return None;
    }
    let t = &sid[sid.len() - 4..];
    Some(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

/// Seven key bytes spread over eight, as DES wants them (parity bits left clear).
fn des_key(k: &[u8; 7]) -> [u8; 8] {
    let o = [
        k[0] >> 1,
        ((k[0] & 0x01) << 6) | (k[1] >> 2),
        ((k[1] & 0x03) << 5) | (k[2] >> 3),
        ((k[2] & 0x07) << 4) | (k[3] >> 4),
        ((k[3] & 0x0f) << 3) | (k[4] >> 5),
        ((k[4] & 0x1f) << 2) | (k[5] >> 6),
        ((k[5] & 0x3f) << 1) | (k[6] >> 7),
        k[6] & 0x7f,
    ];
    o.map(|b| b << 1)
}

fn des_decrypt(key7: [u8; 7], block: &mut [u8]) {
    let key = des_key(&key7);
    let c = des::Des::new(&Array::from(key));
    let mut b = Array::<u8, _>::from(<[u8; 8]>::try_from(&block[..8]).expect("8-byte DES block"));
    c.decrypt_block(&mut b);
    block[..8].copy_from_slice(&b);
    b.as_mut_slice().zeroize();
}

/// Removes the RC4 layer of an encrypted attribute value and checks its CRC32.
pub fn remove_rc4(session_key: &[u8], value: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if value.len() < 20 {
        return Err(format!("an encrypted value of {} bytes is too short", value.len()));
    }
    let (salt, body) = value.split_at(16);
    let mut h = Md5::new();
    h.update(session_key);
    h.update(salt);
    let mut key: [u8; 16] = h.finalize().into();
    let mut clear = Zeroizing::new(body.to_vec());
    Rc4::new_from_slice(&key).expect("RC4 takes a 16-byte key").apply_keystream(&mut clear);
    key.zeroize();
    let crc = u32::from_le_bytes([clear[0], clear[1], clear[2], clear[3]]);
    if crc32fast::hash(&clear[4..]) != crc {
        return Err("the value failed its CRC32 check after decryption (wrong session key, or damaged in transit)".into());
    }
    Ok(Zeroizing::new(clear[4..].to_vec()))
}

/// The NT hash from an encrypted `unicodePwd` value.
pub fn nt_hash(session_key: &[u8], value: &[u8], rid: u32) -> Result<NtHash, String> {
    let clear = remove_rc4(session_key, value)?;
    if clear.len() != 16 {
        return Err(format!("unicodePwd decrypted to {} bytes, not 16", clear.len()));
    }
    let r = rid.to_le_bytes();
    let mut out = NtHash::new([0u8; 16]);
    out.copy_from_slice(&clear);
    des_decrypt([r[0], r[1], r[2], r[3], r[0], r[1], r[2]], &mut out[..8]);
    des_decrypt([r[3], r[0], r[1], r[2], r[3], r[0], r[1]], &mut out[8..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use des::cipher::BlockCipherEncrypt;

    fn des_encrypt(key7: [u8; 7], block: &mut [u8]) {
        let c = des::Des::new(&Array::from(des_key(&key7)));
        let mut b = Array::<u8, _>::from(<[u8; 8]>::try_from(&block[..8]).expect("8 bytes"));
        c.encrypt_block(&mut b);
        block[..8].copy_from_slice(&b);
    }

    /// Encrypts as a DC would, then decrypts: the NT hash comes back, and a flipped bit is caught.
    #[test]
    fn round_trip_and_crc() {
        let nt = idflow_core::hash::nt_hash("Passw0rd!");
        let rid = 1104u32;
        let r = rid.to_le_bytes();
        let mut inner = nt.to_vec();
        des_encrypt([r[0], r[1], r[2], r[3], r[0], r[1], r[2]], &mut inner[..8]);
        des_encrypt([r[3], r[0], r[1], r[2], r[3], r[0], r[1]], &mut inner[8..]);
        let session_key = [7u8; 16];
        let salt = [9u8; 16];
        let mut body = crc32fast::hash(&inner).to_le_bytes().to_vec();
        body.extend_from_slice(&inner);
        let mut h = Md5::new();
        h.update(session_key);
        h.update(salt);
        let key: [u8; 16] = h.finalize().into();
        Rc4::new_from_slice(&key).expect("RC4 takes a 16-byte key").apply_keystream(&mut body);
        let mut value = salt.to_vec();
        value.extend_from_slice(&body);
        assert_eq!(*nt_hash(&session_key, &value, rid).expect("decrypts"), *nt);
        value[30] ^= 1;
        assert!(nt_hash(&session_key, &value, rid).is_err());
    }

    #[test]
    fn rid_from_sid() {
        // S-1-5-21-1-2-3-1104
        let mut sid = vec![1, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1, 2, 3] {
            sid.extend_from_slice(&sub.to_le_bytes());
        }
        assert_eq!(rid_of(&sid), None, "five sub-authorities announced, four present");
        sid.extend_from_slice(&1104u32.to_le_bytes());
        assert_eq!(rid_of(&sid), Some(1104));
    }
}
