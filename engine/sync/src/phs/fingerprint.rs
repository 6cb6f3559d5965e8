//! Change detection without keeping secrets: a keyed fingerprint (HMAC-SHA256 under a
//! per-installation key) of each NT hash as delivered to each target. The key lives in its own
//! file, readable by its owner alone; without the key a fingerprint says nothing about the hash.
use hmac::{KeyInit, Mac};
use idflow_core::{Error, Result};
use std::path::Path;
use zeroize::Zeroizing;

pub(crate) struct Key(Zeroizing<Vec<u8>>);

impl Key {
    /// Loads the key, creating it (32 random bytes, mode 0600) on first use. A key file that
    /// others can read is refused.
    pub(crate) fn load_or_create(path: &Path) -> Result<Key> {
        let bad = |m: String| Error::file(path, m);
        if !path.exists() {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d).map_err(|e| bad(format!("cannot create its folder: {e}")))?;
            }
            let mut k = Zeroizing::new(vec![0u8; 32]);
            getrandom::fill(k.as_mut_slice()).map_err(|e| bad(format!("no random source: {e}")))?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            use std::io::Write as _;
            let mut f = opts.open(path).map_err(|e| bad(format!("cannot create the key: {e}")))?;
            f.write_all(hex::encode(k.as_slice()).as_bytes()).map_err(|e| bad(format!("cannot write the key: {e}")))?;
            f.sync_all().map_err(|e| bad(e.to_string()))?;
            return Ok(Key(k));
        }
        if let Some(mode) = idflow_core::owner_only::open_to_others(path).map_err(|e| bad(e.to_string()))? {
            return Err(bad(format!("the password hash sync key is readable by others (mode {mode:o}); chmod 600 it")));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
        let k = Zeroizing::new(hex::decode(text.trim()).map_err(|_| bad("the key file is not hex".into()))?);
        if k.len() < 16 {
            return Err(bad("the key is too short".into()));
        }
        Ok(Key(k))
    }

    /// The fingerprint of an NT hash as delivered to one target connector.
    pub(crate) fn fingerprint(&self, target: &str, nt: &[u8; 16]) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(target.as_bytes());
        mac.update(&[0]);
        mac.update(nt);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_owner_only_and_one_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let path = t.path().join("keys").join("phs.key");
        Key::load_or_create(&path).expect("made");
        assert_eq!(std::fs::metadata(&path).expect("made").permissions().mode() & 0o777, 0o600);
        Key::load_or_create(&path).expect("read again");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = Key::load_or_create(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("readable by others (mode 640); chmod 600 it"), "{e}");
    }
}
