//! What relay and agent say to each other: one JSON object a line, over mutual TLS.
//! The agent speaks first (hello: its name, the public key of the key pair it made for this
//! connection, and the domain's lockout policy); then the relay sends checks, each password
//! sealed to that key, and the agent answers each by its id. The relay pings every `[pta]
//! heartbeat` and the agent answers; either side that hears nothing for three heartbeats
//! takes the connection for dead (a NAT that forgot it, a partitioned network).
use serde::{Deserialize, Serialize};

/// The longest line either side takes (a check is a few hundred bytes).
pub(super) const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Frame {
    Hello {
        agent: String,
        /// Base64 of the X25519 public key.
        key: String,
        #[serde(default)]
        lockout_threshold: Option<u32>,
        #[serde(default)]
        lockout_window_seconds: Option<u64>,
    },
    Check {
        id: u64,
        user: String,
        /// Base64 of the password sealed to the agent's key (libsodium's sealed box).
        sealed: String,
    },
    Answer {
        id: u64,
        result: idflow_core::password_check::CheckResult,
    },
    Ping,
    Pong,
}

impl Frame {
    pub(super) fn line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Reads one line (at most `MAX_LINE`), or `None` at the end of the stream.
pub(super) async fn read<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = Vec::new();
    let n = (&mut *r).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a line too long or cut off"));
    }
    serde_json::from_slice(&line).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
