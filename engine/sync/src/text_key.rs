//! A text's stand-in as a hash map's key: its 128-bit SipHash under a key drawn at random for
//! the process. A keyed hash of 128 bits is a pseudorandom function: two texts of a directory
//! share one with a chance of about n²/2¹²⁹ (10⁻²⁶ for two million), and without the key no
//! text can be chosen to collide with another.
//!
//! Used where a map of about a million texts is looked up millions of times: the DNs a full
//! sync's references resolve (references.rs: at 1,000,000 people and 50,000 groups a full sync
//! looks 2.2 million DNs up and remembers a million), and the identifiers a plan names
//! referenced objects by (plan.rs). Keyed by the text itself, each lookup read the string (a
//! cache miss more, and a comparison) and each one remembered was an allocation.
pub(crate) struct TextKey(siphasher::sip128::SipHasher13);

impl Default for TextKey {
    fn default() -> Self {
        let mut seed = [0u8; 16];
        if getrandom::fill(&mut seed).is_err() {
            // No system randomness: the standard library's own random keys, hashed.
            use std::hash::BuildHasher;
            let s = std::hash::RandomState::new();
            seed[..8].copy_from_slice(&s.hash_one(1u8).to_le_bytes());
            seed[8..].copy_from_slice(&s.hash_one(2u8).to_le_bytes());
        }
        TextKey(siphasher::sip128::SipHasher13::new_with_key(&seed))
    }
}

impl TextKey {
    /// The key of `text`, as written (no folding of case or spaces).
    pub(crate) fn of(&self, text: &str) -> u128 {
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let mut h = self.0;
        h.write(text.as_bytes());
        h.finish128().as_u128()
    }
}

#[cfg(test)]
mod tests {
    use super::TextKey;

    #[test]
    fn a_key_tells_texts_apart_as_written_and_is_drawn_anew_for_each_map() {
        let (a, b) = (TextKey::default(), TextKey::default());
        let dns = ["uid=a,o=corp", "uid=A,o=corp", "uid=a,o=corp ", "uid=b,o=corp", ""];
        let keys: std::collections::HashSet<u128> = dns.iter().map(|d| a.of(d)).collect();
        assert_eq!(keys.len(), dns.len(), "each text as written has its own key");
        assert_eq!(a.of("uid=a,o=corp"), a.of(&String::from("uid=a,o=corp")));
        assert_ne!(a.of("uid=a,o=corp"), b.of("uid=a,o=corp"), "another map, another random key");
    }
}
