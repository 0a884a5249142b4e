//! The node's configuration: one typed struct, from a TOML file, then `ENRICHMENT_*`
//! environment variables, then command-line flags (each layer overrides the one before).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a node needs to run. Defaults suit a single node on a laptop.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// REST listener.
    pub listen: SocketAddr,
    /// Where the embedded store, JWT keys and other local state live.
    pub data_dir: PathBuf,
    /// Where the WebSocket gateway listens (its own listener, as Discord's is).
    pub gateway_listen: SocketAddr,
    /// The WebSocket URL `GET /gateway` returns; `ws://{gateway_listen}` when unset.
    pub gateway_url: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Snowflake worker and process ids (5 bits each): unique per node in a cluster.
    pub worker_id: u8,
    pub process_id: u8,
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
    /// Largest accepted JSON body, in bytes.
    pub max_json_bytes: usize,
    pub auth: AuthConfig,
    pub rate_limits: RateLimitConfig,
    pub guilds: GuildConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// Lifetime of an access token (JWT).
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token.
    pub refresh_ttl_secs: u64,
    /// argon2id cost: memory in KiB, iterations, lanes.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_lanes: u32,
    /// Failed logins allowed per account, and per client IP, per `login_window_secs`.
    pub login_attempts_per_account: u32,
    pub login_attempts_per_ip: u32,
    pub login_window_secs: u64,
    /// `session_start_limit` reported by `GET /gateway/bot`.
    pub identify_total: u32,
    pub identify_max_concurrency: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "enrichment".into(),
            audience: "enrichment-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_lanes: 1,
            login_attempts_per_account: 5,
            login_attempts_per_ip: 20,
            login_window_secs: 60,
            identify_total: 1000,
            identify_max_concurrency: 1,
        }
    }
}

/// A bucket's allowance: `limit` requests per `per_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub limit: u32,
    pub per_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Per token (or per IP when unauthenticated), across all routes.
    pub global: Limit,
    /// `POST /channels/{id}/messages`, per channel per token.
    pub message_create: Limit,
    /// Reaction add/remove, per channel per token.
    pub reactions: Limit,
    /// Every other route, per route and major id per token.
    pub default_route: Limit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            global: Limit {
                limit: 50,
                per_secs: 1.0,
            },
            message_create: Limit {
                limit: 5,
                per_secs: 5.0,
            },
            reactions: Limit {
                limit: 10,
                per_secs: 2.5,
            },
            default_route: Limit {
                limit: 30,
                per_secs: 10.0,
            },
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuildConfig {
    /// A guild actor with nothing to do for this long stops.
    pub idle_timeout_secs: u64,
    /// How long a REST call waits for a guild actor.
    pub command_timeout_secs: u64,
    /// Message writes in flight per guild.
    pub commit_depth: usize,
    pub max_pins: usize,
    pub max_guilds_per_user: usize,
    pub max_roles: usize,
    pub max_channels: usize,
    pub max_invites: usize,
    /// Distinct emoji per message.
    pub max_reactions_per_message: usize,
    /// Recent `(channel, author, nonce)` triples remembered per guild for `enforce_nonce`.
    pub nonce_memory: usize,
    /// Bounded buffer of the in-process event bus; a subscriber further behind loses events.
    pub event_buffer: usize,
}

impl Default for GuildConfig {
    fn default() -> Self {
        GuildConfig {
            idle_timeout_secs: 300,
            command_timeout_secs: 10,
            commit_depth: 256,
            max_pins: 50,
            max_guilds_per_user: 100,
            max_roles: 250,
            max_channels: 500,
            max_invites: 1000,
            max_reactions_per_message: 20,
            nonce_memory: 4096,
            event_buffer: 4096,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            gateway_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            gateway_url: None,
            log_format: LogFormat::Text,
            worker_id: 0,
            process_id: 0,
            http_workers: 0,
            max_json_bytes: 256 * 1024,
            auth: AuthConfig::default(),
            rate_limits: RateLimitConfig::default(),
            guilds: GuildConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are an error so typos do not pass silently.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    /// Checks values that would only fail later, so they fail at startup instead.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.worker_id < 32, "worker_id must be below 32");
        anyhow::ensure!(self.process_id < 32, "process_id must be below 32");
        anyhow::ensure!(
            self.max_json_bytes >= 1024,
            "max_json_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.auth.access_ttl_secs > 0,
            "auth.access_ttl_secs must be positive"
        );
        anyhow::ensure!(
            self.auth.refresh_ttl_secs > 0,
            "auth.refresh_ttl_secs must be positive"
        );
        for (name, l) in [
            ("global", self.rate_limits.global),
            ("message_create", self.rate_limits.message_create),
            ("reactions", self.rate_limits.reactions),
            ("default_route", self.rate_limits.default_route),
        ] {
            anyhow::ensure!(
                l.limit > 0 && l.per_secs > 0.0,
                "rate_limits.{name} needs a positive limit and per_secs"
            );
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.guilds.idle_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/enrichment.example.toml");
        let parsed = Config::from_file(&path).unwrap();
        parsed.validate().unwrap();
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::to_value(&defaults).unwrap(),
            "the example documents the defaults"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("listne = \"1.2.3.4:5\"").is_err());
        let c: Config = toml::from_str("worker_id = 40").unwrap();
        assert!(c.validate().is_err());
        let c: Config =
            toml::from_str("[rate_limits]\nglobal = { limit = 0, per_secs = 1.0 }").unwrap();
        assert!(c.validate().is_err());
    }
}
