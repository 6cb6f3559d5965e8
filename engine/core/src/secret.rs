//! Secrets a connector's settings point at rather than hold: `<key>_env` names an environment
//! variable, `<key>_file` a file relative to the config's folder. Every connector reads its
//! passwords, tokens and client secrets through here, so they are found, trimmed and reported
//! alike, and the error names the key, never the value.
use std::path::Path;
use zeroize::Zeroizing;

/// The secret `<key>_env` or `<key>_file` gives (the variable wins when both are set), with a
/// file's trailing line break dropped; `None` when neither is set.
pub fn read(base_dir: &Path, key: &str, env: Option<&str>, file: Option<&str>) -> Result<Option<Zeroizing<String>>, String> {
    if let Some(var) = env {
        return std::env::var(var)
            .map(|v| Some(Zeroizing::new(v)))
            .map_err(|_| format!("{key}_env: the environment variable {var} is not set"));
    }
    if let Some(f) = file {
        let p = base_dir.join(f);
        let text = Zeroizing::new(std::fs::read_to_string(&p).map_err(|e| format!("{key}_file {}: {e}", p.display()))?);
        return Ok(Some(Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_file_is_relative_and_trimmed_errors_name_the_key() {
        let dir = std::env::temp_dir().join(format!("idflow-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("pw.txt"), "s3cret \r\n").expect("write");
        assert_eq!(read(&dir, "password", None, Some("pw.txt")).expect("read").as_deref().map(String::as_str), Some("s3cret "));
        assert!(read(&dir, "password", None, None).expect("nothing set").is_none());
        let e = read(&dir, "token", Some("IDFLOW_TEST_SURELY_UNSET_VAR"), Some("pw.txt")).expect_err("unset variable");
        assert_eq!(e, "token_env: the environment variable IDFLOW_TEST_SURELY_UNSET_VAR is not set");
        let e = read(&dir, "oauth.client_secret", None, Some("missing.txt")).expect_err("missing file");
        assert!(e.starts_with("oauth.client_secret_file ") && e.contains("missing.txt"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
