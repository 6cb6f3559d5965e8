//! NT hashes and where they come from. [`HashSource`] is a trait, so that AD over MS-DRSR (as
//! Entra Connect reads them) plugs in beside OpenLDAP's `sambaNTPassword`; the password hash
//! sync stage knows sources only through it.
use crate::error::Result;
use md4::Digest as _;
use std::collections::HashMap;
use zeroize::{Zeroize, Zeroizing};

/// A 16-byte NT hash, wiped from memory when dropped.
pub type NtHash = Zeroizing<[u8; 16]>;

/// MD4 over the UTF-16LE password.
pub fn nt_hash(password: &str) -> NtHash {
    let mut utf16: Vec<u8> = password.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let digest = md4::Md4::digest(&utf16);
    utf16.zeroize();
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&digest);
    out
}

/// Parses an NT hash as directories store it (`sambaNTPassword`: 32 hex characters).
pub fn parse_nt_hex(raw: &[u8]) -> std::result::Result<NtHash, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "it is not text".to_string())?.trim();
    if text.len() != 32 {
        return Err(format!("it has {} characters, an NT hash has 32 hex characters", text.len()));
    }
    let mut out = Zeroizing::new([0u8; 16]);
    hex::decode_to_slice(text, out.as_mut_slice()).map_err(|_| "it is not hex".to_string())?;
    Ok(out)
}

/// One source object's hash, or why it could not be read (the message never holds the value).
pub type HashResult = std::result::Result<NtHash, String>;

/// What the stage asks of a source.
pub struct PullRequest<'a> {
    /// Where the last complete pull ended (a source's own format), if the source keeps one.
    pub watermark: Option<&'a str>,
    /// Ignore the watermark and read everything.
    pub full: bool,
    /// Anchors whose hash was never delivered (new in scope, new target): an incremental
    /// source must read these too, changed or not.
    pub wanted: &'a [String],
}

/// What a source read.
pub struct Pull {
    pub hashes: HashMap<String, HashResult>,
    /// True when `hashes` holds every object: an anchor missing from it has no hash. False for
    /// an incremental read, where a missing anchor is unchanged.
    pub complete: bool,
    /// The watermark to keep once every hash read has been delivered.
    pub watermark: Option<String>,
    /// For an incremental read: anchors asked for (`wanted`) that were read and have no hash.
    pub absent: Vec<String>,
}

impl Pull {
    /// Every hash of the source, read at once, with no watermark.
    pub fn complete(hashes: HashMap<String, HashResult>) -> Self {
        Pull { hashes, complete: true, watermark: None, absent: Vec::new() }
    }
}

pub trait HashSource {
    fn read(&mut self, request: &PullRequest) -> Result<Pull>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nt_hash_and_hex_parsing() {
        assert_eq!(hex::encode_upper(nt_hash("Pa$$w0rd").as_slice()), "92937945B518814341DE3F726500D4FF");
        assert!(parse_nt_hex(b"92937945B518814341DE3F726500D4FF").is_ok());
        assert!(parse_nt_hex(b"92937945B518").expect_err("short").contains("12 characters"));
        assert!(parse_nt_hex(b"ZZ937945B518814341DE3F726500D4FF").expect_err("hex").contains("not hex"));
    }
}
