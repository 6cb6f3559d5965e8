//! Entra Connect's password hash transform, exactly:
//! `v1;PPH1_MD4,<salt hex>,1000,<hash hex>;` where hash = PBKDF2-HMAC-SHA256 over the UTF-16LE
//! upper-case hex of the NT hash, with a fresh 10-byte salt from the OS CSPRNG, 1,000
//! iterations, 32 bytes out. Every buffer that holds a hash is zeroized when dropped.
use idflow_core::hash::nt_hash;
use zeroize::Zeroizing;

pub const ITERATIONS: u32 = 1000;
pub const SALT_LEN: usize = 10;

/// The PBKDF2 input: the NT hash as 32 upper-case hex characters, encoded UTF-16LE (64 bytes).
fn key_material(nt: &[u8; 16]) -> Zeroizing<[u8; 64]> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Zeroizing::new([0u8; 64]);
    for (i, b) in nt.iter().enumerate() {
        out[i * 4] = HEX[(b >> 4) as usize];
        out[i * 4 + 2] = HEX[(b & 0xf) as usize];
    }
    out
}

fn derive(nt: &[u8; 16], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let key = key_material(nt);
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(key.as_slice(), salt, iterations, out.as_mut_slice());
    out
}

/// The PPH1 string for an NT hash and a given salt (tests and test vectors).
pub fn with_salt(nt: &[u8; 16], salt: &[u8; SALT_LEN]) -> Zeroizing<String> {
    let h = derive(nt, salt, ITERATIONS);
    Zeroizing::new(format!("v1;PPH1_MD4,{},{ITERATIONS},{};", hex::encode(salt), hex::encode(h.as_slice())))
}

/// The PPH1 string with a fresh random salt.
pub fn transform(nt: &[u8; 16]) -> Result<Zeroizing<String>, String> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| format!("the operating system's random source failed: {e}"))?;
    Ok(with_salt(nt, &salt))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Malformed {}

/// Checks a cleartext password against a PPH1 string (constant-time comparison).
pub fn verify(pph1: &str, password: &str) -> Result<bool, Malformed> {
    let bad = |m: &str| Malformed(format!("not a PPH1 string: {m}"));
    let body = pph1.trim().strip_prefix("v1;PPH1_MD4,").ok_or_else(|| bad("it must start with v1;PPH1_MD4,"))?;
    let body = body.strip_suffix(';').ok_or_else(|| bad("it must end with ';'"))?;
    let parts: Vec<&str> = body.split(',').collect();
    if parts.len() != 3 {
        return Err(bad("it must hold salt, iterations and hash, separated by commas"));
    }
    let salt = hex::decode(parts[0]).map_err(|_| bad("the salt is not hex"))?;
    if salt.is_empty() {
        return Err(bad("the salt is empty"));
    }
    let iterations: u32 = parts[1].parse().map_err(|_| bad("the iteration count is not a number"))?;
    if iterations == 0 || iterations > 10_000_000 {
        return Err(bad("the iteration count is out of range"));
    }
    let want = Zeroizing::new(hex::decode(parts[2]).map_err(|_| bad("the hash is not hex"))?);
    if want.len() != 32 {
        return Err(bad("the hash must be 32 bytes"));
    }
    let nt = nt_hash(password);
    let got = derive(&nt, &salt, iterations);
    // Constant time: look at every byte.
    let diff = got.iter().zip(want.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(diff == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_test_vector() {
        // DSInternals' OrgIdHashTester vector.
        let nt = nt_hash("Pa$$w0rd");
        assert_eq!(hex::encode_upper(nt.as_slice()), "92937945B518814341DE3F726500D4FF");
        let salt: [u8; 10] = hex::decode("181a3024085fcee2f70e").expect("hex").try_into().expect("10 bytes");
        assert_eq!(
            with_salt(&nt, &salt).as_str(),
            "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;"
        );
    }

    #[test]
    fn transform_salts_and_verifies() {
        let nt = nt_hash("Correct Horse");
        let a = transform(&nt).expect("salt");
        let b = transform(&nt).expect("salt");
        assert_ne!(a.as_str(), b.as_str(), "a fresh salt every time");
        assert_eq!(verify(&a, "Correct Horse"), Ok(true));
        assert_eq!(verify(&a, "correct horse"), Ok(false));
        assert!(verify("v1;PPH1_MD4,zz,1000,00;", "x").is_err());
        assert!(verify("v2;PPH1_MD4,00,1000,00;", "x").is_err());
        assert!(verify("v1;PPH1_MD4,0011,1000,00;", "x").is_err());
    }
}
