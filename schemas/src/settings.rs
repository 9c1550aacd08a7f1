//! Layered configuration shared by the services: built-in defaults, then a TOML file, then
//! `UPTAKE_…` environment variables (`UPTAKE_KAFKA__BROKERS` sets `kafka.brokers`).
//! Each service deserialises the result into its own typed config and validates it.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

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
    let env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true);
    Ok(builder.add_source(env).build()?.try_deserialize()?)
}

/// Log output: `auto` (human-readable in a terminal, JSON lines otherwise), `json` or `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}
