//! Multi-valued attributes: all values of an attribute, and the functions that work on them.
use rhai::plugin::*;

/// The key under which an object map keeps all values of every attribute with more than one
/// (`source.x` is the first; an attribute with one value is only `source.x`).
pub const VALUES_KEY: &str = "@values";

// The plugin macro expands `pure` functions with an unwrap of its own; the code here has none.
#[allow(clippy::unwrap_used)]
#[export_module]
pub mod multi {
    use rhai::{Array, Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext};

    /// All values of attribute `name` of an object (`source` or `mv`), as an array; `[]` when absent.
    /// `values(source, "proxyAddresses")`.
    #[rhai_fn(name = "values", pure)]
    pub fn values(obj: &mut Map, name: &str) -> Array {
        let many = obj.get(super::VALUES_KEY).and_then(|v| v.read_lock::<Map>().and_then(|m| m.get(name).cloned()));
        if let Some(a) = many.and_then(|v| v.into_array().ok()) {
            return a;
        }
        // One value (or none): the attribute itself.
        match obj.get(name) {
            None => Array::new(),
            Some(v) if v.is_unit() => Array::new(),
            Some(v) => match v.clone().into_array() {
                Ok(a) => a,
                Err(_) => vec![v.clone()],
            },
        }
    }

    /// True when `list` holds `value` (text compares ignoring case), or when text contains a substring.
    #[rhai_fn(name = "contains")]
    pub fn contains(list: Array, value: Dynamic) -> bool {
        let needle = value.to_string().to_lowercase();
        list.iter().any(|v| v.to_string().to_lowercase() == needle)
    }
    #[rhai_fn(name = "contains")]
    pub fn contains_str(s: &str, sub: &str) -> bool {
        s.to_lowercase().contains(&sub.to_lowercase())
    }
    #[rhai_fn(name = "contains")]
    pub fn contains_unit(_s: (), _v: Dynamic) -> bool {
        false
    }

    /// The value at 0-based `index` (negative counts from the end); past the end is `()` (Entra: `Item`).
    #[rhai_fn(name = "item")]
    pub fn item(list: Array, index: i64) -> Dynamic {
        let len = list.len() as i64;
        let i = if index < 0 { len + index } else { index };
        if i < 0 || i >= len {
            return Dynamic::UNIT;
        }
        list.into_iter().nth(i as usize).unwrap_or(Dynamic::UNIT)
    }
    #[rhai_fn(name = "item")]
    pub fn item_unit(_s: (), _index: i64) {}

    /// The values for which `predicate` is true (Entra: `Where`): `where(values(source, "proxyAddresses"), |a| a.starts_with("smtp:"))`.
    #[rhai_fn(name = "where", return_raw)]
    pub fn where_(ctx: NativeCallContext, list: Array, predicate: FnPtr) -> Result<Array, Box<EvalAltResult>> {
        let mut out = Array::new();
        for v in list {
            if predicate.call_within_context::<bool>(&ctx, (v.clone(),))? {
                out.push(v);
            }
        }
        Ok(out)
    }
    #[rhai_fn(name = "where")]
    pub fn where_unit(_s: (), _predicate: FnPtr) -> Array {
        Array::new()
    }

    /// The values with duplicates removed, first occurrence kept, text compared ignoring case (Entra: `RemoveDuplicates`).
    #[rhai_fn(name = "remove_duplicates")]
    pub fn remove_duplicates(list: Array) -> Array {
        let mut seen = std::collections::HashSet::new();
        list.into_iter().filter(|v| seen.insert(v.to_string().to_lowercase())).collect()
    }
    #[rhai_fn(name = "remove_duplicates")]
    pub fn remove_duplicates_unit(_s: ()) {}

    /// The number of values: an array's length, 1 for a single value, 0 for `()` (Entra: `Count`).
    #[rhai_fn(name = "count")]
    pub fn count(list: Array) -> i64 {
        list.len() as i64
    }
    #[rhai_fn(name = "count")]
    pub fn count_unit(_s: ()) -> i64 {
        0
    }
    #[rhai_fn(name = "count")]
    pub fn count_str(_s: &str) -> i64 {
        1
    }
}
