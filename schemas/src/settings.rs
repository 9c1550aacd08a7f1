//! Layered configuration shared by the services: built-in defaults, then a TOML file, then
//! `UPTAKE_…` environment variables (`UPTAKE_KAFKA__BROKERS` sets `kafka.brokers`).
//! Each service deserialises the result into its own typed config and validates it.

pub mod reference;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::SchemaError;

/// Environment variable prefix of every override.
pub const ENV_PREFIX: &str = "UPTAKE";

/// Loads `T` from `file` (if given; it must exist) overlaid with `UPTAKE_…` environment variables.
/// Missing keys take `T`'s serde defaults.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, SchemaError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
    }
    // UPTAKE_CONFIG names the file itself, UPTAKE_TEST_* belong to the test harness and
    // UPTAKE_CONSOLE_* to the console's own configuration (the console also loads the
    // aggregator's, with this function, in the same process): none is a setting here, and the
    // typed configs reject unknown keys.
    let vars = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("UPTAKE_")
                && k != "UPTAKE_CONFIG"
                && !k.starts_with("UPTAKE_TEST_")
                && !k.starts_with("UPTAKE_CONSOLE_")
        })
        .collect();
    let env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(Some(vars));
    Ok(builder.add_source(env).build()?.try_deserialize()?)
}

/// Log output: `auto` (human-readable in a terminal, JSON lines otherwise), `json` or `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        listen: String,
        kafka: Kafka,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Kafka {
        brokers: String,
        linger_ms: u64,
    }

    #[test]
    fn environment_overrides_the_file_and_non_settings_are_ignored() {
        let path = std::env::temp_dir().join(format!("uptake-settings-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\n[kafka]\nbrokers = \"a:9092\"\nlinger_ms = 5\n").unwrap();
        std::env::set_var("UPTAKE_KAFKA__BROKERS", "b:9092,c:9092");
        std::env::set_var("UPTAKE_CONFIG", "/somewhere.toml");
        std::env::set_var("UPTAKE_TEST_KAFKA", "x:1");
        // The console's own settings, seen by the aggregator config it loads too.
        std::env::set_var("UPTAKE_CONSOLE__SESSION__SECRET", "not-an-aggregator-setting");
        std::env::set_var("UPTAKE_CONSOLE_CONFIG", "/etc/uptake/console.toml");
        let cfg: Cfg = load(Some(&path)).unwrap();
        std::env::remove_var("UPTAKE_KAFKA__BROKERS");
        assert_eq!(
            cfg,
            Cfg { listen: "127.0.0.1:1".into(), kafka: Kafka { brokers: "b:9092,c:9092".into(), linger_ms: 5 } }
        );

        std::env::set_var("UPTAKE_KAFKA__LINGER_MS", "soon");
        let err = load::<Cfg>(Some(&path)).unwrap_err().to_string();
        std::env::remove_var("UPTAKE_KAFKA__LINGER_MS");
        assert!(err.contains("linger_ms"), "{err}");
        let _ = std::fs::remove_file(path);
    }
}
