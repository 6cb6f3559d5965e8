//! Evaluation helpers: presence, first present value, inline if, and Entra's Switch.
use rhai::plugin::*;

#[export_module]
pub mod eval {
    use super::*;
    use rhai::{Array, Dynamic, EvalAltResult};

    /// True unless the value is `()`, empty text (after trimming) or an empty array (Entra: `IsPresent`).
    #[rhai_fn(name = "is_present")]
    pub fn is_present(v: Dynamic) -> bool {
        crate::present(&v)
    }

    /// True when the value is absent: the opposite of `is_present` (Entra: `IsNullOrEmpty`).
    #[rhai_fn(name = "is_empty")]
    pub fn is_empty(v: Dynamic) -> bool {
        !crate::present(&v)
    }

    /// The first present value (Entra: `Coalesce`): `coalesce(source.mail, source.userPrincipalName)`.
    #[rhai_fn(name = "coalesce")]
    pub fn coalesce2(a: Dynamic, b: Dynamic) -> Dynamic {
        first_present([a, b])
    }
    /// `coalesce(a, b, c)`.
    #[rhai_fn(name = "coalesce")]
    pub fn coalesce3(a: Dynamic, b: Dynamic, c: Dynamic) -> Dynamic {
        first_present([a, b, c])
    }
    /// `coalesce(a, b, c, d)`.
    #[rhai_fn(name = "coalesce")]
    pub fn coalesce4(a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic) -> Dynamic {
        first_present([a, b, c, d])
    }
    /// `coalesce([a, b, ...])`: any number of candidates in an array.
    #[rhai_fn(name = "coalesce")]
    pub fn coalesce_array(list: Array) -> Dynamic {
        first_present(list)
    }

    /// `a` when `condition` is true, else `b` (Entra: `IIF`). A `()` condition counts as false.
    #[rhai_fn(name = "iif")]
    pub fn iif(condition: Dynamic, a: Dynamic, b: Dynamic) -> Dynamic {
        if condition.as_bool().unwrap_or(false) {
            a
        } else {
            b
        }
    }

    /// Entra's `Switch`: pairs of condition and value, first true condition wins, else `default`.
    /// (`switch` is a Rhai keyword: for matching one value, Rhai's own `switch x { "a" => 1, _ => 2 }` works too.)
    /// `switch_of([uac_flag(source.userAccountControl, 2), "disabled", true, "enabled"], ())`.
    #[rhai_fn(name = "switch_of", return_raw)]
    pub fn switch_of(pairs: Array, default: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        if !pairs.len().is_multiple_of(2) {
            return Err("switch_of: the array must hold condition, value pairs (an even number of items)".into());
        }
        let mut it = pairs.into_iter();
        while let (Some(c), Some(v)) = (it.next(), it.next()) {
            if c.as_bool().unwrap_or(false) {
                return Ok(v);
            }
        }
        Ok(default)
    }
}

fn first_present(list: impl IntoIterator<Item = Dynamic>) -> Dynamic {
    list.into_iter().find(crate::present).unwrap_or(Dynamic::UNIT)
}
