//! What opening an LDAP session needs, worked out from the settings once: where, as whom (the
//! bind password kept out of Debug output and wiped when dropped), which objects are in scope.
use super::config::Flavor;
use crate::object_types::ObjectTypes;
use idflow_core::dn;
use std::time::Duration;
use zeroize::Zeroizing;

/// Everything needed to open a session, with the secret kept out of Debug output.
pub(super) struct Conf {
    pub name: String,
    pub flavor: Flavor,
    pub url: String,
    pub bind_dn: Option<String>,
    pub(super) password: Option<Zeroizing<String>>,
    /// Where searches start: `include_ous` where given, else `base_dn`.
    pub bases: Vec<String>,
    /// The naming-context roots (`base_dn`): AD's DirSync only searches from there.
    pub roots: Vec<String>,
    /// Normalized OU filters, checked on every object.
    pub include_ous: Vec<String>,
    pub exclude_ous: Vec<String>,
    pub starttls: bool,
    pub tls: std::sync::Arc<rustls::ClientConfig>,
    /// `tls_insecure`: the server's certificate is not checked.
    pub tls_insecure: bool,
    pub anchor: String,
    pub types: ObjectTypes,
    pub filter: String,
    pub binary: Vec<String>,
    pub extra_attributes: Vec<String>,
    pub page_size: i32,
    pub timeout: Duration,
}

impl Conf {
    /// The attribute a delta names objects by: syncrepl by entryUUID, DirSync by objectGUID.
    pub(super) fn delta_key(&self) -> &'static str {
        match self.flavor {
            Flavor::Openldap => "entryUUID",
            Flavor::Ad => "objectGUID",
        }
    }

    /// Whether a delta names objects as this connector anchors them. With another anchor (an
    /// employee number, `ms-DS-ConsistencyGuid`) a delta's deletions and AD's partial entries
    /// would name objects the connector space does not know by that name: every import of the
    /// connector is a full one instead (its deletions come from a complete read).
    pub(super) fn deltas_by_anchor(&self) -> bool {
        self.anchor.eq_ignore_ascii_case(self.delta_key())
    }

    /// The URL's host and port (389, or 636 for `ldaps://`); an empty host is `localhost`.
    pub(super) fn host_port(&self) -> Result<(String, u16), String> {
        let url = url::Url::parse(&self.url).map_err(|e| format!("url {:?}: {e}", self.url))?;
        let host = match url.host() {
            Some(url::Host::Domain("")) | None => "localhost".to_string(),
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
        };
        Ok((host, url.port().unwrap_or(if self.ldaps() { 636 } else { 389 })))
    }

    /// Whether the URL speaks TLS from the start.
    pub(super) fn ldaps(&self) -> bool {
        self.url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("ldaps://"))
    }

    /// Entra Connect's OU filtering: below an included OU (when any are given), not below an excluded one.
    pub(super) fn in_scope(&self, dn: &str) -> bool {
        if self.include_ous.is_empty() && self.exclude_ous.is_empty() {
            return true;
        }
        let n = dn::norm(dn);
        let under = |ou: &String| n == *ou || n.ends_with(&format!(",{ou}"));
        (self.include_ous.is_empty() || self.include_ous.iter().any(under)) && !self.exclude_ous.iter().any(under)
    }
}

impl std::fmt::Debug for Conf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conf").field("name", &self.name).field("url", &self.url).field("bind_dn", &self.bind_dn).finish_non_exhaustive()
    }
}
