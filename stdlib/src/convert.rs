//! Conversions: base64, hex, AD GUIDs and SIDs, numbers, and directory dates (FileTime, GeneralizedTime).
use rhai::plugin::*;

#[export_module]
pub mod convert {
    use super::*;
    use base64::Engine as _;
    use rhai::{Blob, Dynamic, EvalAltResult, ImmutableString};

    /// Base64 of binary data or of text's UTF-8 bytes (Entra: `ConvertToBase64`).
    /// `to_base64(source.objectGUID)` is how a sourceAnchor is made.
    #[rhai_fn(name = "to_base64")]
    pub fn to_base64(b: Blob) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }
    #[rhai_fn(name = "to_base64")]
    pub fn to_base64_str(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    }
    #[rhai_fn(name = "to_base64")]
    pub fn to_base64_unit(_v: ()) {}

    /// Decodes base64 to binary (a blob). Invalid base64 is an error.
    #[rhai_fn(name = "from_base64", return_raw)]
    pub fn from_base64(s: &str) -> Result<Blob, Box<EvalAltResult>> {
        base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|e| err(format!("from_base64: not base64 ({e})")))
    }
    #[rhai_fn(name = "from_base64")]
    pub fn from_base64_unit(_v: ()) {}

    /// Decodes base64 to text (UTF-8) (Entra: `ConvertFromBase64`).
    #[rhai_fn(name = "base64_to_string", return_raw)]
    pub fn base64_to_string(s: &str) -> Result<String, Box<EvalAltResult>> {
        let b = from_base64(s)?;
        String::from_utf8(b).map_err(|_| err("base64_to_string: the decoded bytes are not UTF-8".into()))
    }
    #[rhai_fn(name = "base64_to_string")]
    pub fn base64_to_string_unit(_v: ()) {}

    /// Lower-case hex of binary data (Entra: `ConvertToUTF8Hex` for text's bytes).
    #[rhai_fn(name = "to_hex")]
    pub fn to_hex(b: Blob) -> String {
        hex::encode(b)
    }
    #[rhai_fn(name = "to_hex")]
    pub fn to_hex_str(s: &str) -> String {
        hex::encode(s.as_bytes())
    }
    #[rhai_fn(name = "to_hex")]
    pub fn to_hex_int(n: i64) -> String {
        format!("{n:x}")
    }
    #[rhai_fn(name = "to_hex")]
    pub fn to_hex_unit(_v: ()) {}

    /// Decodes hex to binary. Invalid hex is an error.
    #[rhai_fn(name = "from_hex", return_raw)]
    pub fn from_hex(s: &str) -> Result<Blob, Box<EvalAltResult>> {
        hex::decode(s.trim()).map_err(|e| err(format!("from_hex: not hex ({e})")))
    }
    #[rhai_fn(name = "from_hex")]
    pub fn from_hex_unit(_v: ()) {}

    /// Text of UTF-8 bytes (a blob); invalid UTF-8 is an error.
    #[rhai_fn(name = "blob_to_string", return_raw)]
    pub fn blob_to_string(b: Blob) -> Result<String, Box<EvalAltResult>> {
        String::from_utf8(b).map_err(|_| err("blob_to_string: bytes are not UTF-8".into()))
    }

    /// A 16-byte GUID in AD's byte order (objectGUID) as text: `guid_to_string(source.objectGUID)`
    /// gives `"c5b5a4d9-...."` (Entra: `StringFromGuid`).
    #[rhai_fn(name = "guid_to_string", return_raw)]
    pub fn guid_to_string(b: Blob) -> Result<String, Box<EvalAltResult>> {
        crate::guid_bytes_to_string(&b).ok_or_else(|| err(format!("guid_to_string: a GUID is 16 bytes, got {}", b.len())))
    }
    #[rhai_fn(name = "guid_to_string")]
    pub fn guid_to_string_unit(_v: ()) {}

    /// A GUID's text form to AD's 16-byte order (Entra: `GuidFromString`). Braces are allowed.
    #[rhai_fn(name = "guid_from_string", return_raw)]
    pub fn guid_from_string(s: &str) -> Result<Blob, Box<EvalAltResult>> {
        crate::guid_string_to_bytes(s).ok_or_else(|| err(format!("guid_from_string: not a GUID: {s:?}")))
    }
    #[rhai_fn(name = "guid_from_string")]
    pub fn guid_from_string_unit(_v: ()) {}

    /// A binary SID (objectSid) as text `S-1-5-21-...` (Entra: `StringFromSid`).
    #[rhai_fn(name = "sid_to_string", return_raw)]
    pub fn sid_to_string(b: Blob) -> Result<String, Box<EvalAltResult>> {
        crate::sid_bytes_to_string(&b).ok_or_else(|| err(format!("sid_to_string: not a SID ({} bytes)", b.len())))
    }
    #[rhai_fn(name = "sid_to_string")]
    pub fn sid_to_string_unit(_v: ()) {}

    /// Text or a number to an integer (Entra: `CNum`); `()` stays `()`, text that is not a number is an error.
    #[rhai_fn(name = "to_int", return_raw)]
    pub fn to_int(s: &str) -> Result<i64, Box<EvalAltResult>> {
        let t = s.trim();
        let parsed = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            i64::from_str_radix(h, 16).ok()
        } else {
            t.parse::<i64>().ok()
        };
        parsed.ok_or_else(|| err(format!("to_int: not a number: {s:?}")))
    }
    #[rhai_fn(name = "to_int")]
    pub fn to_int_int(n: i64) -> i64 {
        n
    }
    #[rhai_fn(name = "to_int")]
    pub fn to_int_unit(_v: ()) {}

    /// An AD FileTime (100 ns ticks since 1601, as in `accountExpires`, `pwdLastSet`) as an ISO 8601
    /// UTC time `2024-05-01T12:00:00Z` (Entra: `DateFromNum`). `0` and `9223372036854775807` mean "never": `()`.
    #[rhai_fn(name = "from_filetime", return_raw)]
    pub fn from_filetime(n: i64) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(crate::filetime_to_iso(n).map(Dynamic::from).unwrap_or(Dynamic::UNIT))
    }
    #[rhai_fn(name = "from_filetime", return_raw)]
    pub fn from_filetime_str(s: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        from_filetime(to_int(s)?)
    }
    #[rhai_fn(name = "from_filetime")]
    pub fn from_filetime_unit(_v: ()) {}

    /// An ISO 8601 time to an AD FileTime.
    #[rhai_fn(name = "to_filetime", return_raw)]
    pub fn to_filetime(s: &str) -> Result<i64, Box<EvalAltResult>> {
        crate::iso_to_filetime(s).ok_or_else(|| err(format!("to_filetime: not an ISO 8601 time: {s:?}")))
    }

    /// LDAP GeneralizedTime (`20240501120000Z`, `20240501120000.0Z`, with `+hhmm` offsets) as ISO 8601 UTC.
    #[rhai_fn(name = "from_generalized_time", return_raw)]
    pub fn from_generalized_time(s: &str) -> Result<String, Box<EvalAltResult>> {
        crate::generalized_to_iso(s).ok_or_else(|| err(format!("from_generalized_time: not a GeneralizedTime: {s:?}")))
    }
    #[rhai_fn(name = "from_generalized_time")]
    pub fn from_generalized_time_unit(_v: ()) {}

    /// Formats an ISO 8601 time with a strftime pattern (Entra: `FormatDateTime`): `format_date(t, "%Y-%m-%d")`.
    #[rhai_fn(name = "format_date", return_raw)]
    pub fn format_date(s: &str, pattern: &str) -> Result<String, Box<EvalAltResult>> {
        let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| err(format!("format_date: {s:?}: {e}")))?;
        let mut out = String::new();
        use std::fmt::Write as _;
        write!(out, "{}", t.format(pattern)).map_err(|_| err(format!("format_date: bad pattern {pattern:?}")))?;
        Ok(out)
    }
    #[rhai_fn(name = "format_date")]
    pub fn format_date_unit(_v: (), _pattern: &str) {}

    /// Text of any value (Entra: `CStr`): numbers, booleans and text; `()` stays `()`.
    #[rhai_fn(name = "to_str")]
    pub fn to_str(v: Dynamic) -> Dynamic {
        if v.is_unit() {
            return v;
        }
        Dynamic::from(ImmutableString::from(v.to_string()))
    }

    /// True for `true`, `"TRUE"`/`"true"` (as LDAP writes booleans) and numbers other than 0;
    /// false for anything else, `()` included (Entra: `CBool`): `to_bool(source.msExchHideFromAddressLists)`.
    #[rhai_fn(name = "to_bool")]
    pub fn to_bool(v: Dynamic) -> bool {
        if let Ok(b) = v.as_bool() {
            return b;
        }
        if let Ok(n) = v.as_int() {
            return n != 0;
        }
        match v.read_lock::<ImmutableString>() {
            Some(s) => {
                let t = s.trim();
                t.eq_ignore_ascii_case("true") || t.parse::<i64>().is_ok_and(|n| n != 0)
            }
            None => false,
        }
    }
}

fn err(msg: String) -> Box<EvalAltResult> {
    msg.into()
}
