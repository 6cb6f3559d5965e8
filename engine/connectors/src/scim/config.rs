//! The `[[connector]]` settings of a `scim` connector.
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OAuth {
    pub token_url: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) token_env: Option<String>,
    #[serde(default)]
    pub(crate) token_file: Option<String>,
    #[serde(default)]
    pub(crate) oauth: Option<OAuth>,
    #[serde(default = "d_concurrency")]
    pub(crate) concurrency: usize,
    /// Most member operations in one PATCH request.
    #[serde(default = "d_member_batch")]
    pub(crate) member_batch: usize,
    #[serde(default = "d_timeout")]
    pub(crate) timeout_seconds: u64,
    #[serde(default = "d_retries")]
    pub(crate) max_retries: u32,
    #[serde(default = "d_page")]
    pub(crate) page_size: usize,
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
    #[serde(default)]
    pub(crate) tls_insecure: bool,
}

fn d_concurrency() -> usize {
    4
}
fn d_member_batch() -> usize {
    100
}
fn d_timeout() -> u64 {
    30
}
fn d_retries() -> u32 {
    5
}
fn d_page() -> usize {
    100
}
