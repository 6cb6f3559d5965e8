//! idflow's standard library: the functions attribute-flow rules call, packaged for Rhai.
//!
//! One file per family: [`text`], [`convert`], [`multi`], [`eval`], [`directory`]. Names follow
//! what an Entra Connect admin knows (`LCase` is `lower`, `DNComponent` is `dn_component`, ...),
//! and every function given `()` (a missing attribute) returns `()` rather than failing, so a
//! missing attribute flows as missing.
//!
//! ```
//! let mut engine = rhai::Engine::new();
//! idflow_stdlib::register(&mut engine);
//! let v: String = engine.eval(r#"pcase(lower("ADA LOVELACE"))"#).expect("evaluates");
//! assert_eq!(v, "Ada Lovelace");
//! ```
#![deny(clippy::unwrap_used)]

mod convert;
mod diacritics;
mod directory;
mod eval;
mod multi;
mod text;

pub use directory::Reference;
pub use multi::VALUES_KEY;
// DNs are the core's: the connectors and the engine parse them the same way.
use idflow_core::dn;

use rhai::def_package;
use rhai::packages::Package;
use rhai::plugin::*;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

def_package! {
    /// Every idflow rule function, as one Rhai package.
    pub IdflowPackage(module) {
        combine_with_exported_module!(module, "text", text::text);
        combine_with_exported_module!(module, "convert", convert::convert);
        combine_with_exported_module!(module, "multi", multi::multi);
        combine_with_exported_module!(module, "eval", eval::eval);
        combine_with_exported_module!(module, "directory", directory::directory);
    }
}

/// Registers the package into an engine, ahead of Rhai's own functions of the same name.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_global_module(IdflowPackage::new().as_shared_module());
}

/// True unless `()`, blank text or an empty array.
pub(crate) fn present(v: &rhai::Dynamic) -> bool {
    if v.is_unit() {
        return false;
    }
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        return !s.trim().is_empty();
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return !a.is_empty();
    }
    true
}

/// Compiled regular expressions, kept across calls: rules call the same pattern for every object.
pub(crate) fn cached_regex(pattern: &str) -> Result<regex::Regex, Box<rhai::EvalAltResult>> {
    static CACHE: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().map_err(|_| "regex cache poisoned".to_string())?;
    if let Some(r) = guard.get(pattern) {
        return Ok(r.clone());
    }
    let r = regex::Regex::new(pattern).map_err(|e| format!("bad regular expression {pattern:?}: {e}"))?;
    if guard.len() < 1024 {
        guard.insert(pattern.to_string(), r.clone());
    }
    Ok(r)
}

/// AD stores a GUID's first three fields little-endian.
pub fn guid_bytes_to_string(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        hex::encode(&b[10..16])
    ))
}

/// The inverse of [`guid_bytes_to_string`].
pub fn guid_string_to_bytes(s: &str) -> Option<Vec<u8>> {
    let h: String = s.trim().trim_start_matches('{').trim_end_matches('}').chars().filter(|c| *c != '-').collect();
    let raw = hex::decode(h).ok()?;
    if raw.len() != 16 {
        return None;
    }
    let mut b = raw.clone();
    b[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    b[4..6].copy_from_slice(&[raw[5], raw[4]]);
    b[6..8].copy_from_slice(&[raw[7], raw[6]]);
    Some(b)
}

/// A binary SID as `S-R-I-S1-S2...`.
pub fn sid_bytes_to_string(b: &[u8]) -> Option<String> {
    if b.len() < 8 {
        return None;
    }
    let revision = b[0];
    let count = b[1] as usize;
    if b.len() != 8 + 4 * count {
        return None;
    }
    let mut auth: u64 = 0;
    for x in &b[2..8] {
        auth = (auth << 8) | u64::from(*x);
    }
    let mut s = format!("S-{revision}-{auth}");
    for i in 0..count {
        let o = 8 + 4 * i;
        let sub = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        s.push_str(&format!("-{sub}"));
    }
    Some(s)
}

const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// FileTime ticks to ISO 8601; `0` and `i64::MAX` ("never") give `None`.
pub fn filetime_to_iso(n: i64) -> Option<String> {
    if n <= 0 || n == i64::MAX {
        return None;
    }
    let ticks = n - FILETIME_UNIX_EPOCH;
    let secs = ticks.div_euclid(10_000_000);
    let nanos = (ticks.rem_euclid(10_000_000) * 100) as u32;
    let t = chrono::DateTime::from_timestamp(secs, nanos)?;
    Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// ISO 8601 to FileTime ticks.
pub fn iso_to_filetime(s: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    Some(t.timestamp() * 10_000_000 + i64::from(t.timestamp_subsec_nanos() / 100) + FILETIME_UNIX_EPOCH)
}

/// LDAP GeneralizedTime to ISO 8601 UTC.
pub fn generalized_to_iso(s: &str) -> Option<String> {
    let s = s.trim();
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() < 10 {
        return None;
    }
    let mut rest = &s[digits.len()..];
    if let Some(r) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(',')) {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let padded = format!("{:0<14}", digits);
    let naive = chrono::NaiveDateTime::parse_from_str(&padded[..14], "%Y%m%d%H%M%S").ok()?;
    let offset_secs = match rest {
        "Z" | "" => 0,
        o if (o.starts_with('+') || o.starts_with('-')) && o.len() == 5 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let h: i32 = o[1..3].parse().ok()?;
            let m: i32 = o[3..5].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let utc = naive - chrono::Duration::seconds(i64::from(offset_secs));
    Some(utc.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests;
