//! Write keys as configured: where they come from (the config file, `UPTAKE_WRITE_KEYS`, a keys
//! file) and the rules they must meet before ingest starts.
//!
//! One text format serves the environment and the file: entries `<key> <source>`, separated by
//! newlines or commas, `#` starting a comment. Secrets then stay out of the config file (a
//! Kubernetes secret mounted as a file, or injected as an environment variable).
//!
//! Errors name the entry (`write_keys[2].key`, `write_keys_file line 4`) and never print a key
//! in full: configuration errors end up in logs.

use std::fmt;
use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::IngestError;

/// A write key and the source it names (stamped on every event sent with it).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteKey {
    /// The key as clients send it (basic-auth user, `writeKey` in the body, or bearer token).
    pub key: String,
    /// The source it names, stamped on every event sent with it (e.g. the product's name).
    pub source: String,
}

/// The key of the local stack (`deploy/local/ingest.toml`); it is public, so it is only
/// accepted while ingest listens on a loopback address.
pub const DEV_KEY: &str = "uptake-dev-key";

/// The shortest production key: 32 characters leave no room for guessing (e.g. `openssl rand -hex 24`).
pub const MIN_KEY_CHARS: usize = 32;

/// Parses `<key> <source>` entries (newline- or comma-separated, `#` comments, blank entries
/// skipped). Each entry comes back with its 1-based number (the line, for a file of one entry per
/// line); an error says which entry and why, without the key.
pub fn parse_entries(text: &str) -> Result<Vec<(usize, WriteKey)>, String> {
    let mut out = Vec::new();
    let entries = text.lines().flat_map(|line| line.split(','));
    for (i, entry) in entries.enumerate() {
        let entry = entry.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let Some((key, source)) = entry.split_once(char::is_whitespace) else {
            return Err(format!("entry {}: expected `<key> <source>`, found one word", i + 1));
        };
        out.push((i + 1, WriteKey { key: key.to_owned(), source: source.trim().to_owned() }));
    }
    Ok(out)
}

/// Deserialises `write_keys` from a list of `{key, source}` tables (TOML) or from a string of
/// entries (how `UPTAKE_WRITE_KEYS` arrives through the environment overlay).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WriteKey>, D::Error> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<WriteKey>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of {key, source} tables, or a string of `<key> <source>` entries")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let entries = parse_entries(v).map_err(|why| E::custom(format!("write_keys: {why}")))?;
            Ok(entries.into_iter().map(|(_, k)| k).collect())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = seq.next_element::<WriteKey>()? {
                out.push(k);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Keys)
}

/// Enough of a key to find it in one's own config, never enough to use it.
pub fn redacted(key: &str) -> String {
    let n = key.chars().count();
    if n >= 16 {
        format!("{}… ({n} characters)", key.chars().take(4).collect::<String>())
    } else {
        format!("… ({n} characters)")
    }
}

/// Checks one key and its source; `name` is how the error names the entry.
pub fn check(name: &str, k: &WriteKey, listen: SocketAddr) -> Result<(), IngestError> {
    let bad = |field: &str, reason: String| Err(IngestError::Config { key: format!("{name}{field}"), reason });
    if k.key == DEV_KEY {
        if !listen.ip().is_loopback() {
            return bad(
                ".key",
                format!(
                    "the local development key {DEV_KEY:?} is public; it is refused unless `listen` \
                     is a loopback address (listen = {listen})"
                ),
            );
        }
    } else if k.key.chars().count() < MIN_KEY_CHARS {
        return bad(".key", format!("{} is too short; a write key needs at least {MIN_KEY_CHARS}", redacted(&k.key)));
    }
    // SDKs send the key as an HTTP Basic user name (which ends at ':') or a Bearer token, and the
    // entry format splits at ',' and whitespace: such a character is a pasting mistake.
    if !k.key.chars().all(|c| c.is_ascii_graphic() && c != ':' && c != ',' && c != '#') {
        let why = format!("{} has a character outside printable ASCII, or one of `:` `,` `#`", redacted(&k.key));
        return bad(".key", why);
    }
    if k.source.trim().is_empty() {
        return bad(".source", "must name the sending source".into());
    }
    Ok(())
}

/// Checks every key, and that no key is listed twice (which source would it name?).
pub fn check_all(keys: &[WriteKey], listen: SocketAddr) -> Result<(), IngestError> {
    if keys.is_empty() {
        return Err(IngestError::Config {
            key: "write_keys".into(),
            reason: "at least one write key is required (write_keys, UPTAKE_WRITE_KEYS or write_keys_file)".into(),
        });
    }
    for (i, k) in keys.iter().enumerate() {
        check(&format!("write_keys[{i}]"), k, listen)?;
        if let Some(j) = keys[..i].iter().position(|other| other.key == k.key) {
            return Err(IngestError::Config {
                key: format!("write_keys[{i}].key"),
                reason: format!("{} is the same key as write_keys[{j}]", redacted(&k.key)),
            });
        }
    }
    Ok(())
}

/// Reads a keys file: one `<key> <source>` entry per line. Errors name the file's line.
pub fn read_file(path: &std::path::Path, listen: SocketAddr) -> Result<Vec<WriteKey>, IngestError> {
    let bad = |reason: String| IngestError::Config { key: "write_keys_file".into(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    if text.contains(',') {
        // One entry per line keeps "line N" exact in every error.
        return Err(bad(format!("{}: one `<key> <source>` entry per line, no commas", path.display())));
    }
    let entries =
        parse_entries(&text).map_err(|why| bad(format!("{}: {}", path.display(), why.replacen("entry", "line", 1))))?;
    let mut keys = Vec::with_capacity(entries.len());
    for (line, k) in entries {
        check(&format!("write_keys_file line {line}"), &k, listen)?;
        keys.push(k);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: &str = "127.0.0.1:8080";
    const PUBLIC: &str = "0.0.0.0:8080";
    const LONG: &str = "k3y-0123456789abcdef0123456789abcdef";

    fn key(k: &str) -> WriteKey {
        WriteKey { key: k.into(), source: "web".into() }
    }

    #[test]
    fn the_dev_key_is_refused_unless_ingest_listens_on_loopback() {
        check_all(&[key(DEV_KEY)], LOOPBACK.parse().unwrap()).unwrap();
        check_all(&[key(DEV_KEY)], "[::1]:8080".parse().unwrap()).unwrap();
        let err = check_all(&[key(LONG), key(DEV_KEY)], PUBLIC.parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("write_keys[1].key") && err.contains("loopback"), "{err}");
    }

    #[test]
    fn a_key_shorter_than_32_characters_is_refused_without_printing_it() {
        let short = "abcdefghij0123456789";
        let err = check_all(&[key(short)], LOOPBACK.parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("write_keys[0].key") && err.contains("at least 32"), "{err}");
        assert!(!err.contains(short) && !err.contains("0123"), "the key leaked: {err}");
        check_all(&[key(LONG)], PUBLIC.parse().unwrap()).unwrap();
    }

    #[test]
    fn duplicates_and_odd_characters_are_refused() {
        let err = check_all(&[key(LONG), key(LONG)], PUBLIC.parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("write_keys[1].key") && err.contains("write_keys[0]"), "{err}");
        let err = check_all(&[key(&format!("{LONG}:x"))], PUBLIC.parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("printable ASCII"), "{err}");
    }

    #[test]
    fn entries_parse_from_lines_or_commas_with_comments() {
        let text = "# keys\nk1aaaaaaaaa web site\n\n  k2bbbbbbbbb  backend # the API\n";
        let got = parse_entries(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1.key.as_str(), got[0].1.source.as_str()), (2, "k1aaaaaaaaa", "web site"));
        assert_eq!((got[1].0, got[1].1.source.as_str()), (4, "backend"));
        let got = parse_entries("a1 web, b2 api").unwrap();
        assert_eq!(got.iter().map(|(_, k)| k.key.as_str()).collect::<Vec<_>>(), ["a1", "b2"]);
        assert!(parse_entries("a b\nlonely\n").unwrap_err().contains("entry 2"));
    }
}
