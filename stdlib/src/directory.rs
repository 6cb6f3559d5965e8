//! Directory functions: DN parts, DN escaping, references, and userAccountControl bits.
use rhai::plugin::*;

/// A reference in a source object (`source.manager`, `values(source, "member")`): the DN of
/// another object of the same directory. It stays a reference through any flow and reaches the
/// metaverse, then each target, as a reference to that object; `dn_text(x)` gives its DN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(pub String);

#[export_module]
pub mod directory {
    use super::*;
    use rhai::{Dynamic, EvalAltResult};

    /// The DN a reference points at, as text (for DN functions, or to flow it as text on purpose):
    /// `dn_text(source.manager)`; text stays text, `()` stays `()`.
    #[rhai_fn(name = "dn_text")]
    pub fn dn_text(r: Reference) -> String {
        r.0
    }
    #[rhai_fn(name = "dn_text")]
    pub fn dn_text_str(s: &str) -> String {
        s.to_string()
    }
    #[rhai_fn(name = "dn_text")]
    pub fn dn_text_unit(_v: ()) {}

    /// The value of the `n`th RDN from the left, 1-based (Entra: `DNComponent`):
    /// `dn_component("CN=Ada,OU=Sales,DC=corp", 2)` is `"Sales"`; past the end is `()`.
    #[rhai_fn(name = "dn_component", return_raw)]
    pub fn dn_component(dn: &str, n: i64) -> Result<Dynamic, Box<EvalAltResult>> {
        let rdns = parse(dn)?;
        Ok(pick(&rdns, n))
    }
    #[rhai_fn(name = "dn_component")]
    pub fn dn_component_unit(_dn: (), _n: i64) {}

    /// The value of the `n`th RDN from the right, 1-based (Entra: `DNComponentRev`): `dn_component_rev(dn, 1)` is the last `DC`.
    #[rhai_fn(name = "dn_component_rev", return_raw)]
    pub fn dn_component_rev(dn: &str, n: i64) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut rdns = parse(dn)?;
        rdns.reverse();
        Ok(pick(&rdns, n))
    }
    #[rhai_fn(name = "dn_component_rev")]
    pub fn dn_component_rev_unit(_dn: (), _n: i64) {}

    /// The DN of the container: `parent_dn("uid=a,ou=People,dc=x")` is `"ou=People,dc=x"`; a one-RDN DN's parent is `""`.
    #[rhai_fn(name = "parent_dn", return_raw)]
    pub fn parent_dn(dn: &str) -> Result<String, Box<EvalAltResult>> {
        let rdns = parse(dn)?;
        Ok(crate::dn::format(rdns.get(1..).unwrap_or(&[])))
    }
    #[rhai_fn(name = "parent_dn")]
    pub fn parent_dn_unit(_dn: ()) {}

    /// The (unescaped) value of the first RDN: `rdn_value("cn=Smith\\, John,ou=x")` is `"Smith, John"`.
    #[rhai_fn(name = "rdn_value", return_raw)]
    pub fn rdn_value(dn: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let rdns = parse(dn)?;
        Ok(pick(&rdns, 1))
    }
    #[rhai_fn(name = "rdn_value")]
    pub fn rdn_value_unit(_dn: ()) {}

    /// Escapes a value for use in a DN (Entra: `EscapeDNComponent`): `"cn=" + escape_dn("Smith, John")`.
    #[rhai_fn(name = "escape_dn")]
    pub fn escape_dn(value: &str) -> String {
        crate::dn::escape_value(value)
    }
    #[rhai_fn(name = "escape_dn")]
    pub fn escape_dn_unit(_v: ()) {}

    /// True when bit `flag` is set in a userAccountControl value (number or text):
    /// `uac_flag(source.userAccountControl, 0x2)` is true for a disabled account. `()` is false.
    #[rhai_fn(name = "uac_flag", return_raw)]
    pub fn uac_flag(uac: i64, flag: i64) -> Result<bool, Box<EvalAltResult>> {
        Ok(uac & flag != 0)
    }
    #[rhai_fn(name = "uac_flag", return_raw)]
    pub fn uac_flag_str(uac: &str, flag: i64) -> Result<bool, Box<EvalAltResult>> {
        let n: i64 = uac.trim().parse().map_err(|_| format!("uac_flag: not a number: {uac:?}"))?;
        Ok(n & flag != 0)
    }
    #[rhai_fn(name = "uac_flag")]
    pub fn uac_flag_unit(_uac: (), _flag: i64) -> bool {
        false
    }

    /// The bits set in both (Entra: `BitAnd`), for numbers or their text:
    /// `bit_and(source.msExchRecipientTypeDetails, 0x40000000) != 0`. `()` is 0.
    #[rhai_fn(name = "bit_and")]
    pub fn bit_and(a: i64, b: i64) -> i64 {
        a & b
    }
    #[rhai_fn(name = "bit_and", return_raw)]
    pub fn bit_and_str(a: &str, b: i64) -> Result<i64, Box<EvalAltResult>> {
        let n: i64 = a.trim().parse().map_err(|_| format!("bit_and: not a number: {a:?}"))?;
        Ok(n & b)
    }
    #[rhai_fn(name = "bit_and")]
    pub fn bit_and_unit(_a: (), _b: i64) -> i64 {
        0
    }

    /// The DNS domain of a DN, from its `DC=` parts (what Entra calls `%Domain.FQDN%`):
    /// `dns_domain("CN=Ada,OU=Staff,DC=example,DC=test")` is `"example.test"`; no `DC=` part is `()`.
    #[rhai_fn(name = "dns_domain", return_raw)]
    pub fn dns_domain(dn: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let dcs: Vec<String> =
            parse(dn)?.iter().flat_map(|r| r.pairs.iter()).filter(|(a, _)| a.eq_ignore_ascii_case("dc")).map(|(_, v)| v.clone()).collect();
        Ok(if dcs.is_empty() { Dynamic::UNIT } else { Dynamic::from(dcs.join(".")) })
    }
    #[rhai_fn(name = "dns_domain")]
    pub fn dns_domain_unit(_dn: ()) {}
}

fn parse(dn: &str) -> Result<Vec<crate::dn::Rdn>, Box<EvalAltResult>> {
    crate::dn::parse(dn).map_err(|e| format!("not a DN: {e}").into())
}

fn pick(rdns: &[crate::dn::Rdn], n: i64) -> Dynamic {
    if n < 1 {
        return Dynamic::UNIT;
    }
    rdns.get((n - 1) as usize).and_then(|r| r.pairs.first()).map(|(_, v)| Dynamic::from(v.clone())).unwrap_or(Dynamic::UNIT)
}
