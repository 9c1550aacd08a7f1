//! The console's configuration: raw (what TOML and `UPTAKE_CONSOLE__…` variables say) →
//! validated [`ConsoleConfig`]. ClickHouse, Kafka, the rule file and the health bands are not
//! repeated here: they come from the aggregator's own config file, so the console can never show
//! a different database or different thresholds from the ones the alerts were computed with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregator::AggregatorConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ConsoleError;

/// Prefix of the environment overrides: `UPTAKE_CONSOLE__SESSION__SECRET` sets `session.secret`.
pub const ENV_PREFIX: &str = "UPTAKE_CONSOLE";

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawConsoleConfig {
    /// Address the console listens on.
    pub listen: String,
    /// The operator's listener (`/healthz`, `/readyz`, `/metrics` with
    /// `uptake_console_sign_ins_total{outcome}`), apart from the CSMs' port; empty: none. The
    /// images and the chart set `0.0.0.0:8091`. `/healthz` and `/readyz` (ClickHouse reachable)
    /// are also on `listen`.
    pub admin_listen: String,
    /// The aggregator's config file (ClickHouse, Kafka, rules, health bands); none: its defaults.
    /// A relative path is relative to the console's config file.
    pub aggregator_config: Option<PathBuf>,
    pub session: RawSession,
    pub auth: RawAuth,
    /// CSM users who sign in with a password (`console user add` prints an entry).
    pub users: Vec<UserConfig>,
    /// Tokens of the privacy API (`/api/v1/regulations`, docs/privacy.md), for scripts and
    /// `console privacy`: each names who the audit trail records and holds the token's SHA-256
    /// (`console token add NAME` prints a token and its entry). Never a write key.
    pub api_tokens: Vec<ApiToken>,
}

impl Default for RawConsoleConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8090".into(),
            admin_listen: String::new(),
            aggregator_config: None,
            session: RawSession::default(),
            auth: RawAuth::default(),
            users: Vec::new(),
            api_tokens: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawSession {
    /// Signs session cookies and CSRF tokens: at least 32 characters of secret. Changing it signs
    /// everyone out. Required. Set it from the environment in production
    /// (`UPTAKE_CONSOLE__SESSION__SECRET`).
    pub secret: String,
    /// How long a sign-in lasts.
    pub ttl_hours: u64,
    /// Mark the cookie `Secure` (only sent over HTTPS). On everywhere but plain-HTTP local use.
    pub secure_cookie: bool,
}

impl Default for RawSession {
    fn default() -> Self {
        Self { secret: String::new(), ttl_hours: 12, secure_cookie: true }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// Trusted-header sign-in for a single-sign-on proxy in front (oauth2-proxy sets
    /// `X-Forwarded-Email` / `X-Forwarded-User`): the user this header names is signed in, no
    /// password asked. Empty: off (the default). Only safe when nothing but the proxy can reach
    /// the console.
    pub trusted_header: String,
    /// Failed sign-ins allowed per user name within `login_window_secs`.
    pub login_attempts: u32,
    /// Failed sign-ins allowed per client address (any names) within `login_window_secs`.
    pub address_attempts: u32,
    /// The fixed window failed sign-ins are counted in, from the first failure: a name or
    /// address that used up its attempts is refused until its window ends.
    pub login_window_secs: u64,
    /// Where the client's address is, behind a reverse proxy: a header the proxy sets
    /// (`X-Real-IP`, or `X-Forwarded-For`, whose last entry is taken — the one the proxy added).
    /// Empty: the TCP peer. Without it behind a proxy, every CSM shares the proxy's address.
    pub client_address_header: String,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            trusted_header: String::new(),
            login_attempts: 5,
            address_attempts: 20,
            login_window_secs: 900,
            client_address_header: String::new(),
        }
    }
}

/// One CSM who can sign in.
#[derive(Debug, Clone, Deserialize, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The sign-in name, also the name accounts' `csm` trait and alert assignments use.
    pub name: String,
    /// A readable name, for the operator's own records (the console shows `name`).
    #[serde(default)]
    pub display_name: String,
    /// An argon2 PHC string (`$argon2id$…`), as `console user add` prints it.
    pub password_hash: String,
    /// `csm` (the default) or `admin`: only an admin sees the privacy pages and files privacy
    /// requests. Also decides for a user signed in by the trusted header who is listed here.
    #[serde(default)]
    pub role: UserRole,
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// The book, the inbox and the alert workflow.
    #[default]
    Csm,
    /// Also privacy requests (delete, suppress, export a person).
    Admin,
}

/// One token of the privacy API.
#[derive(Debug, Clone, Deserialize, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who uses it: recorded as the requester of every request it files.
    pub name: String,
    /// The token's SHA-256, 64 hex digits (the token itself is never stored).
    pub sha256: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub aggregator: AggregatorConfig,
    pub session_secret: Vec<u8>,
    pub session_ttl: Duration,
    pub secure_cookie: bool,
    /// Lower-cased header name, when trusted-header sign-in is on.
    pub trusted_header: Option<String>,
    pub login_attempts: u32,
    pub address_attempts: u32,
    pub login_window: Duration,
    /// Lower-cased header holding the client's address (behind a proxy), if configured.
    pub client_address_header: Option<String>,
    pub users: Vec<UserConfig>,
    pub api_tokens: Vec<ApiToken>,
}

impl RawConsoleConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConsoleError> {
        let source = config::File::from_str(text, config::FileFormat::Toml);
        Ok(config::Config::builder().add_source(source).build()?.try_deserialize()?)
    }

    /// The file (if any) overlaid with `UPTAKE_CONSOLE__…` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConsoleError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        let env = config::Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__");
        let mut raw: Self = builder.add_source(env).build()?.try_deserialize()?;
        // A relative aggregator config is next to this file, wherever the console is started from.
        if let (Some(dir), Some(agg)) = (file.and_then(Path::parent), raw.aggregator_config.as_ref()) {
            if agg.is_relative() {
                raw.aggregator_config = Some(dir.join(agg));
            }
        }
        Ok(raw)
    }

    /// Validates against the aggregator config `aggregator_config` names (loaded here).
    pub fn build(self) -> Result<ConsoleConfig, ConsoleError> {
        let aggregator = AggregatorConfig::load(self.aggregator_config.as_deref())?;
        self.build_with(aggregator)
    }

    /// Validates, with the aggregator config given (tests pass their own).
    pub fn build_with(self, aggregator: AggregatorConfig) -> Result<ConsoleConfig, ConsoleError> {
        let bad = |key: &str, reason: &str| Err(ConsoleError::Config { key: key.into(), reason: reason.into() });
        let Ok(listen) = self.listen.parse() else {
            return bad("listen", "must be an address such as 127.0.0.1:8090");
        };
        let admin_listen = match self.admin_listen.trim() {
            "" => None,
            addr => match addr.parse() {
                Ok(a) => Some(a),
                Err(_) => return bad("admin_listen", "must be an address such as 127.0.0.1:8091, or empty"),
            },
        };
        if self.session.secret.len() < 32 {
            return bad("session.secret", "must be at least 32 characters (it signs the session cookies)");
        }
        if self.session.ttl_hours == 0 {
            return bad("session.ttl_hours", "must be at least 1");
        }
        if self.auth.login_attempts == 0 || self.auth.address_attempts == 0 || self.auth.login_window_secs == 0 {
            return bad(
                "auth.login_attempts",
                "login_attempts, address_attempts and login_window_secs must be positive",
            );
        }
        let address_header = self.auth.client_address_header.trim().to_ascii_lowercase();
        if !address_header.is_empty() && axum::http::HeaderName::from_bytes(address_header.as_bytes()).is_err() {
            return bad("auth.client_address_header", "is not a valid HTTP header name");
        }
        let trusted_header = Some(self.auth.trusted_header.trim().to_ascii_lowercase()).filter(|h| !h.is_empty());
        if let Some(h) = &trusted_header {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return bad("auth.trusted_header", "is not a valid HTTP header name");
            }
        }
        if self.users.is_empty() && trusted_header.is_none() {
            return bad("users", "name at least one user (`console user add`), or set auth.trusted_header");
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let key = format!("users[{i}]");
            if !valid_user_name(&u.name) {
                return bad(&key, "name must be 1–64 characters of letters, digits, . _ @ + -");
            }
            if !seen.insert(u.name.to_ascii_lowercase()) {
                return bad(&key, &format!("user {:?} is listed twice", u.name));
            }
            if argon2::PasswordHash::new(&u.password_hash).is_err() {
                return bad(&key, "password_hash is not an argon2 PHC string: make it with `console user add`");
            }
        }
        for (i, t) in self.api_tokens.iter().enumerate() {
            let key = format!("api_tokens[{i}]");
            if !valid_user_name(&t.name) {
                return bad(&key, "name must be 1–64 characters of letters, digits, . _ @ + -");
            }
            if t.sha256.len() != 64 || !t.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return bad(&key, "sha256 must be 64 hex digits: make it with `console token add`");
            }
        }
        Ok(ConsoleConfig {
            listen,
            admin_listen,
            aggregator,
            session_secret: self.session.secret.into_bytes(),
            session_ttl: Duration::from_secs(self.session.ttl_hours * 3600),
            secure_cookie: self.session.secure_cookie,
            trusted_header,
            login_attempts: self.auth.login_attempts,
            address_attempts: self.auth.address_attempts,
            login_window: Duration::from_secs(self.auth.login_window_secs),
            client_address_header: Some(address_header).filter(|h| !h.is_empty()),
            users: self.users,
            api_tokens: self.api_tokens,
        })
    }
}

/// User names appear in URLs, cookies and alert records: a conservative alphabet.
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'))
}

impl ConsoleConfig {
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name.eq_ignore_ascii_case(name))
    }

    /// Whether `name` is an admin (a listed user with `role = "admin"`).
    pub fn is_admin(&self, name: &str) -> bool {
        self.user(name).is_some_and(|u| u.role == UserRole::Admin)
    }

    /// The name of the API token whose SHA-256 is `digest` (hex), compared in constant time.
    pub fn api_token(&self, digest: &str) -> Option<&str> {
        use subtle::ConstantTimeEq;
        let digest = digest.to_ascii_lowercase();
        self.api_tokens
            .iter()
            .find(|t| bool::from(t.sha256.to_ascii_lowercase().as_bytes().ct_eq(digest.as_bytes())))
            .map(|t| t.name.as_str())
    }
}

impl RawConsoleConfig {
    /// The reference of every key, as docs/configuration.md holds it (`console --config-doc`).
    pub fn reference() -> schemas::settings::reference::Reference {
        const INTRO: &str = "`console --config console.toml` (or `UPTAKE_CONSOLE_CONFIG`). ClickHouse, Kafka, rules and health bands are not repeated here: they are read from the aggregator's file (`aggregator_config`). Every key can also be set by the environment variable under it (prefix `UPTAKE_CONSOLE__`), which wins over the file; lists and tables only in the file. `console --config-doc` prints this section.";
        schemas::settings::reference::render(
            "console",
            INTRO,
            &schemars::schema_for!(RawConsoleConfig),
            "UPTAKE_CONSOLE__",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0YfTn6e5o0m8Xw0vP6l0Ugf1ZrJ8cQfYy3c7CkH0yJ8";

    fn aggregator() -> AggregatorConfig {
        aggregator::RawAggregatorConfig::default().build_and_validate().unwrap()
    }

    fn raw(extra: &str) -> RawConsoleConfig {
        RawConsoleConfig::from_toml(&format!(
            "[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n{extra}\n[[users]]\nname = \"dana\"\npassword_hash = \"{HASH}\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn the_configuration_reference_is_complete_and_in_the_docs() {
        RawConsoleConfig::reference().assert_in_docs(env!("CARGO_MANIFEST_DIR"), "console --config-doc");
    }

    #[test]
    fn a_minimal_config_builds() {
        let cfg = raw("").build_with(aggregator()).unwrap();
        assert_eq!(cfg.users.len(), 1);
        assert_eq!(cfg.trusted_header, None);
        assert!(cfg.secure_cookie);
        assert!(cfg.user("DANA").is_some());
    }

    #[test]
    fn bad_settings_name_their_key() {
        let short =
            RawConsoleConfig { session: RawSession { secret: "short".into(), ..Default::default() }, ..raw("") };
        let e = short.build_with(aggregator()).unwrap_err().to_string();
        assert!(e.contains("session.secret"), "{e}");
        let mut twice = raw("");
        twice.users.push(twice.users[0].clone());
        let e = twice.build_with(aggregator()).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let mut plain = raw("");
        plain.users[0].password_hash = "hunter2".into();
        let e = plain.build_with(aggregator()).unwrap_err().to_string();
        assert!(e.contains("password_hash"), "{e}");
        let header = raw("[auth]\ntrusted_header = \"X Bad\"");
        let e = header.build_with(aggregator()).unwrap_err().to_string();
        assert!(e.contains("trusted_header"), "{e}");
    }

    #[test]
    fn nobody_can_sign_in_is_refused_unless_a_proxy_signs_them_in() {
        let none = RawConsoleConfig { users: vec![], ..raw("") };
        assert!(none.clone().build_with(aggregator()).is_err());
        let proxied = RawConsoleConfig {
            auth: RawAuth { trusted_header: "X-Forwarded-Email".into(), ..Default::default() },
            ..none
        };
        let cfg = proxied.build_with(aggregator()).unwrap();
        assert_eq!(cfg.trusted_header.as_deref(), Some("x-forwarded-email"));
    }
}
