//! Hash maps and sets for the hot paths of import and sync, looked up once or more per object
//! (the ids and DNs an import saw, the index entries a sync holds back, the DNs references
//! resolve to): foldhash, several times cheaper than the standard library's SipHash on short
//! keys. Each map still has its own random seed, so keys from a directory cannot be chosen to
//! collide in every run; where a map's keys come from outside and it lives long (a service's
//! state), keep the standard `HashMap`.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// A hash of `s` that is the same in every run and process (for a key kept by its hash, where
/// two keys sharing one only costs a lookup).
pub fn fixed_hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(s)
}
