//! Write-key authentication, Segment style: the key is the HTTP Basic username (password empty),
//! a Bearer token, or `writeKey` in the JSON body.

use axum::http::{header, HeaderMap};
use base64::Engine;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::keys::WriteKey;

/// The accepted write keys.
pub struct WriteKeys {
    keys: Vec<WriteKey>,
}

impl WriteKeys {
    pub fn new(keys: Vec<WriteKey>) -> Self {
        Self { keys }
    }

    /// The source named by `candidate`, if it is a known key. Every key is compared, in constant
    /// time, so the answer's timing does not reveal how much of a key was right or which matched.
    pub fn source_of(&self, candidate: &str) -> Option<&str> {
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.key.as_bytes().ct_eq(candidate.as_bytes())) {
                found = Some(k.source.as_str());
            }
        }
        found
    }
}

/// The write key a request presents in its headers, if any.
pub fn key_from_headers(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
        return Some(user.to_owned());
    }
    None
}

/// The `writeKey` a JSON body carries at its top level, if any.
pub fn key_from_body(body: &Value) -> Option<String> {
    body.get("writeKey")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys() -> WriteKeys {
        WriteKeys::new(vec![
            WriteKey { key: "key-one-123".into(), source: "web".into() },
            WriteKey { key: "key-two-456".into(), source: "backend".into() },
        ])
    }

    #[test]
    fn known_keys_name_their_source_and_others_do_not() {
        let k = keys();
        assert_eq!(k.source_of("key-two-456"), Some("backend"));
        assert_eq!(k.source_of("key-one-123"), Some("web"));
        assert_eq!(k.source_of("key-one-12"), None);
        assert_eq!(k.source_of(""), None);
    }

    #[test]
    fn basic_and_bearer_headers_yield_the_key() {
        let mut h = HeaderMap::new();
        // Segment SDKs send base64("<writeKey>:").
        let basic = base64::engine::general_purpose::STANDARD.encode("key-one-123:");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {basic}")).unwrap());
        assert_eq!(key_from_headers(&h).as_deref(), Some("key-one-123"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer key-two-456"));
        assert_eq!(key_from_headers(&h).as_deref(), Some("key-two-456"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest abc"));
        assert_eq!(key_from_headers(&h), None);
    }
}
