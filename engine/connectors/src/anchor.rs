//! Anchors as text: how a directory's immutable id (entryUUID, objectGUID) is kept.
use base64::Engine as _;
use idflow_core::Value;

/// Text as it is, binary (objectGUID) as base64.
pub(crate) fn anchor_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Bin(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::Ref(r) => r.to_string(),
    }
}
