//! Where a [`Config`] comes from: the defaults, then the TOML file (`--config`,
//! `ENRICHMENT_CONFIG`), then `ENRICHMENT_*` environment variables, then command-line flags,
//! each layer overriding the one before. figment merges the layers and reads the result into
//! [`Config`]; this module decides what each layer holds.
//!
//! **Every key can be set from the environment**, under one rule: `ENRICHMENT_` and the key
//! path in upper case, joined by `_` (`guilds.max_pins` is `ENRICHMENT_GUILDS_MAX_PINS`,
//! `rate_limits.global.limit` is `ENRICHMENT_RATE_LIMITS_GLOBAL_LIMIT`). Keys contain `_`
//! themselves, so a variable's name cannot be split back into a path; the table of names is
//! built from the config's own shape instead (its serialized defaults), which is also why a
//! key added to [`Config`] has its variable without further work. Two names from before the
//! rule still work (`LEGACY`). Variables that name no key (`ENRICHMENT_LOG`,
//! `ENRICHMENT_CONFIG`, test switches) are not config and are left alone; an unknown key in
//! the file, on the other hand, is an error, so a typo there does not pass silently.
//!
//! Values from the environment are strings. They become numbers or booleans where the key
//! wants one (figment's lossy extraction), and stay strings where it wants a string, so an
//! all-digit token is still a token; list keys (`scylla.nodes`) take a comma-separated list;
//! an empty variable counts as unset. A value that does not fit names the key, its variable
//! and the layer it came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::value::{Dict, Map, Num, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;

use super::Config;

const PREFIX: &str = "ENRICHMENT_";

/// What sets a key other than the file: the environment and the flags.
#[derive(Debug, Default)]
pub struct Sources {
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
    /// Environment variables; only those that name a key are read.
    pub env: Vec<(OsString, OsString)>,
    /// The flags that were given.
    pub flags: Overrides,
}

impl Sources {
    /// `file`, this process's environment, and `flags`.
    pub fn process(file: Option<PathBuf>, flags: Overrides) -> Sources {
        Sources {
            file,
            env: std::env::vars_os().collect(),
            flags,
        }
    }
}

/// Values set on the command line, by key path (`postgres.url`); the last layer.
#[derive(Debug, Default)]
pub struct Overrides {
    values: Vec<(&'static str, Result<Value, figment::Error>)>,
}

impl Overrides {
    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &'static str, value: impl Serialize) {
        self.values.push((key, Value::serialize(value)));
    }

    /// Sets `key` when a value was given, and leaves it to the other layers otherwise.
    pub fn given<T: Serialize>(&mut self, key: &'static str, value: Option<T>) {
        if let Some(value) = value {
            self.set(key, value);
        }
    }

    /// The key paths set, in order.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.iter().map(|(key, _)| *key)
    }
}

/// A variable named before the naming rule, and what it sets.
enum Legacy {
    /// Another name for a key.
    Alias(&'static str),
    /// A switch: when true, the key takes this value; when false, it is left alone.
    Switch(&'static str, bool),
}

/// The names from before the naming rule, kept working. The rule's own name of the same key
/// wins when both are set.
const LEGACY: &[(&str, Legacy)] = &[
    (
        "ENRICHMENT_MAX_ATTACHMENT_BYTES",
        Legacy::Alias("attachments.max_bytes"),
    ),
    (
        "ENRICHMENT_NO_RATE_LIMITS",
        Legacy::Switch("rate_limits.enabled", false),
    ),
];

/// The environment variable of a key path under the naming rule.
pub fn env_var(key: &str) -> String {
    format!("{PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every key of the config with its default, `listen` to `attachments.public_url`: the leaves
/// of the serialized defaults (a section is not a key, an unset optional key is).
pub fn keys() -> Vec<(String, Value)> {
    fn walk(prefix: &str, dict: &Dict, out: &mut Vec<(String, Value)>) {
        for (name, value) in dict {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                Value::Dict(_, inner) => walk(&path, inner, out),
                leaf => out.push((path, leaf.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk("", &defaults(), &mut out);
    out
}

/// The defaults as figment's values. `Config` always serializes to a table (the tests list its
/// keys from here), so the empty fallback is never taken.
fn defaults() -> Dict {
    Value::serialize(Config::default())
        .ok()
        .and_then(Value::into_dict)
        .unwrap_or_default()
}

/// How a variable's text becomes a value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    /// A string, read as a number or a boolean where the key wants one.
    Text,
    /// A comma-separated list.
    List,
    /// A float, parsed here: figment would read a short decimal as an `f32` and widen it.
    Float,
}

/// What one variable sets.
#[derive(Clone, Debug)]
struct EnvKey {
    key: String,
    shape: Shape,
    /// For a switch: the value the key takes when the variable is true.
    switch: Option<bool>,
}

/// Variable name to what it sets, for every key and every legacy name.
fn env_table() -> BTreeMap<String, EnvKey> {
    let mut table = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    for (key, default) in keys() {
        let shape = match default {
            Value::Array(..) => Shape::List,
            Value::Num(_, Num::F32(_) | Num::F64(_)) => Shape::Float,
            _ => Shape::Text,
        };
        shapes.insert(key.clone(), shape);
        table.insert(
            env_var(&key),
            EnvKey {
                key,
                shape,
                switch: None,
            },
        );
    }
    for (name, legacy) in LEGACY {
        let (key, switch) = match legacy {
            Legacy::Alias(key) => (*key, None),
            Legacy::Switch(key, value) => (*key, Some(*value)),
        };
        let shape = shapes.get(key).copied().unwrap_or(Shape::Text);
        table.insert(
            (*name).to_owned(),
            EnvKey {
                key: key.to_owned(),
                shape,
                switch,
            },
        );
    }
    table
}

/// One layer: values by key path, and a phrase that says where a key's value came from.
struct Layer {
    name: &'static str,
    origin: BTreeMap<String, String>,
    fallback: String,
    dict: Dict,
}

impl Layer {
    fn new(name: &'static str, fallback: String) -> Layer {
        Layer {
            name,
            origin: BTreeMap::new(),
            fallback,
            dict: Dict::new(),
        }
    }

    fn insert(&mut self, key: &str, value: Value) {
        let mut parts: Vec<&str> = key.split('.').collect();
        let Some(last) = parts.pop() else { return };
        let mut dict = &mut self.dict;
        for part in parts {
            let entry = dict
                .entry(part.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            let Value::Dict(_, inner) = entry else { return };
            dict = inner;
        }
        dict.insert(last.to_owned(), value);
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let origin = self.origin.clone();
        let fallback = self.fallback.clone();
        Metadata::named(self.name).interpolater(move |_: &Profile, path: &[&str]| {
            origin
                .get(&path.join("."))
                .cloned()
                .unwrap_or_else(|| fallback.clone())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

impl Config {
    /// The configuration from the defaults, the file, the environment and the flags of
    /// `sources`, in that order of precedence (the flags win). Not yet validated: see
    /// [`Config::validate`].
    pub fn load(sources: Sources) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Layer {
            dict: defaults(),
            ..Layer::new("defaults", "from the defaults".into())
        });
        if let Some(path) = &sources.file {
            figment = figment.merge(file_layer(path)?);
        }
        figment = figment
            .merge(env_layer(&sources.env)?)
            .merge(flag_layer(sources.flags)?);
        figment.extract_lossy::<Config>().map_err(describe)
    }
}

/// Reads a config file: the typed parse, and the table of the keys it sets.
pub(super) fn read_file(path: &Path) -> anyhow::Result<(Config, toml::Table)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    let invalid =
        |e: toml::de::Error| anyhow::anyhow!("invalid config file {}: {e}", path.display());
    // The typed parse refuses unknown keys and values of the wrong type, with their line.
    let config = toml::from_str::<Config>(&text).map_err(invalid)?;
    let table = toml::from_str::<toml::Table>(&text).map_err(invalid)?;
    Ok((config, table))
}

/// The file's layer holds only the keys it sets, so the others stay with the defaults.
fn file_layer(path: &Path) -> anyhow::Result<Layer> {
    let (_, table) = read_file(path)?;
    let dict = Value::serialize(&table)
        .ok()
        .and_then(Value::into_dict)
        .with_context(|| format!("config file {} is not a table", path.display()))?;
    Ok(Layer {
        dict,
        ..Layer::new(
            "config file",
            format!("set in config file {}", path.display()),
        )
    })
}

fn env_layer(vars: &[(OsString, OsString)]) -> anyhow::Result<Layer> {
    let table = env_table();
    let mut found: Vec<(&str, &EnvKey, &str)> = Vec::new();
    for (name, value) in vars {
        let Some((name, key)) = name.to_str().and_then(|n| table.get_key_value(n)) else {
            continue;
        };
        let value = value.to_str().with_context(|| {
            format!(
                "environment variable {name} (config key {}) is not valid UTF-8",
                key.key
            )
        })?;
        if !value.is_empty() {
            found.push((name.as_str(), key, value));
        }
    }
    // Legacy names first, so that the rule's own name of a key wins when both are set.
    found.sort_by_key(|(name, key, _)| *name == env_var(&key.key));
    let mut layer = Layer::new("environment variable", "set by the environment".into());
    for (name, key, text) in found {
        let value = match (key.switch, key.shape) {
            (Some(on), _) => match Value::from(text).to_bool_lossy() {
                Some(true) => Value::from(on),
                Some(false) => continue,
                None => anyhow::bail!(
                    "environment variable {name} (config key {}) must be true or false, not {text:?}",
                    key.key
                ),
            },
            (None, Shape::List) => Value::from(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Value::from)
                    .collect::<Vec<_>>(),
            ),
            (None, Shape::Float) => match text.trim().parse::<f64>() {
                Ok(f) => Value::from(f),
                Err(_) => Value::from(text),
            },
            (None, Shape::Text) => Value::from(text),
        };
        layer.origin.insert(
            key.key.clone(),
            format!("set by environment variable {name}"),
        );
        layer.insert(&key.key, value);
    }
    Ok(layer)
}

fn flag_layer(flags: Overrides) -> anyhow::Result<Layer> {
    let mut layer = Layer::new("command-line flag", "set by a command-line flag".into());
    for (key, value) in flags.values {
        let value = value.map_err(|e| anyhow::anyhow!("the flag for config key {key}: {e}"))?;
        layer.insert(key, value);
    }
    Ok(layer)
}

/// One line per error: the key, its variable, what is wrong and which layer set the value.
fn describe(errors: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
            let origin = e
                .metadata
                .as_ref()
                .map(|md| md.interpolate(&Profile::Default, &path));
            let key = path.join(".");
            let var = env_var(&key);
            let mut line = String::from("config key");
            if !key.is_empty() {
                line = format!("{line} {key}");
                // Named once when it is the variable that set the value.
                if !origin.as_ref().is_some_and(|o| o.ends_with(&var)) {
                    line = format!("{line} ({var})");
                }
            }
            if let Some(origin) = origin {
                line = format!("{line}, {origin}");
            }
            format!("{line}: {}", e.kind)
        })
        .collect();
    anyhow::anyhow!("{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn load_env(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::load(Sources {
            env: env(vars),
            ..Sources::default()
        })
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn each_layer_overrides_the_one_before_for_top_level_and_nested_keys() {
        let toml = file("http_workers = 2\n[guilds]\nmax_pins = 20\n");
        let vars = [
            ("ENRICHMENT_HTTP_WORKERS", "3"),
            ("ENRICHMENT_GUILDS_MAX_PINS", "30"),
        ];
        let mut flags = Overrides::default();
        flags.set("http_workers", 4);
        flags.set("guilds.max_pins", 40);
        let layers = |file: bool, vars: &[(&str, &str)], flags: Option<Overrides>| {
            let c = Config::load(Sources {
                file: file.then(|| toml.path().to_path_buf()),
                env: env(vars),
                flags: flags.unwrap_or_default(),
            })
            .unwrap();
            (c.http_workers, c.guilds.max_pins)
        };
        assert_eq!(layers(false, &[], None), (0, 50), "defaults");
        assert_eq!(
            layers(true, &[], None),
            (2, 20),
            "the file beats the defaults"
        );
        assert_eq!(
            layers(true, &vars, None),
            (3, 30),
            "the environment beats the file"
        );
        assert_eq!(
            layers(true, &vars, Some(flags)),
            (4, 40),
            "flags beat the environment"
        );
        assert_eq!(
            layers(false, &vars[1..], None),
            (0, 30),
            "a layer sets only the keys it names"
        );
    }

    /// A value for `key` that differs from its default and that the key's type accepts.
    fn sample(key: &str, default: &Value) -> String {
        const ENUMS: &[(&str, &str)] = &[
            ("log_format", "json"),
            ("storage", "postgres"),
            ("blobs", "s3"),
            ("scylla.replication", "simple"),
            ("scylla.consistency", "one"),
            // An unset socket address: "12" would not parse as one.
            ("cluster.advertise", "127.0.0.1:9"),
        ];
        if let Some((_, v)) = ENUMS.iter().find(|(k, _)| *k == key) {
            return (*v).to_owned();
        }
        match default {
            Value::Bool(_, b) => (!b).to_string(),
            Value::Num(_, Num::F32(_) | Num::F64(_)) => {
                (default.to_f64().unwrap_or(0.0) + 0.1).to_string()
            }
            Value::Num(..) => (default.to_u128().unwrap_or(0) + 1).to_string(),
            Value::Array(..) => "db1:9042,db2:9042".into(),
            // Unset optional keys: digits suit a number and a string alike.
            Value::Empty(..) => "12".into(),
            Value::String(_, s) => match s.parse::<SocketAddr>() {
                Ok(mut addr) => {
                    addr.set_port(addr.port() + 1);
                    addr.to_string()
                }
                Err(_) => format!("{s}-sample"),
            },
            other => panic!("no sample for {key} = {other:?}"),
        }
    }

    fn render(value: &Value) -> String {
        match value {
            Value::String(_, s) => s.clone(),
            Value::Bool(_, b) => b.to_string(),
            Value::Num(_, Num::F32(_) | Num::F64(_)) => value.to_f64().unwrap_or(0.0).to_string(),
            Value::Num(..) => value.to_u128().map(|n| n.to_string()).unwrap_or_default(),
            Value::Array(_, items) => items.iter().map(render).collect::<Vec<_>>().join(","),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn every_key_can_be_set_by_its_environment_variable() {
        let keys = keys();
        assert!(
            keys.len() > 80,
            "the defaults list every key: {}",
            keys.len()
        );
        for (key, default) in &keys {
            let var = env_var(key);
            let value = sample(key, default);
            let config = load_env(&[(&var, &value)])
                .unwrap_or_else(|e| panic!("{var}={value} does not load: {e}"));
            let got = Value::serialize(&config).unwrap().find(key);
            assert_eq!(
                got.as_ref().map(render),
                Some(value.clone()),
                "{var}={value} sets {key}"
            );
        }
    }

    #[test]
    fn no_two_keys_share_a_variable_name() {
        let keys = keys();
        let names: BTreeSet<String> = keys.iter().map(|(k, _)| env_var(k)).collect();
        assert_eq!(names.len(), keys.len(), "two key paths flatten to one name");
        for (legacy, _) in LEGACY {
            assert!(
                !names.contains(*legacy),
                "{legacy} is both a legacy name and a key's"
            );
        }
        let known: BTreeSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        for (name, legacy) in LEGACY {
            let (Legacy::Alias(key) | Legacy::Switch(key, _)) = legacy;
            assert!(known.contains(key), "{name} sets {key}, which is no key");
        }
    }

    #[test]
    fn the_variables_documented_before_the_naming_rule_work_unchanged() {
        let c = load_env(&[
            ("ENRICHMENT_LISTEN", "0.0.0.0:9000"),
            ("ENRICHMENT_DATA_DIR", "/var/lib/enrichment"),
            ("ENRICHMENT_GATEWAY_LISTEN", "0.0.0.0:9001"),
            ("ENRICHMENT_GATEWAY_URL", "wss://gw.example.test"),
            ("ENRICHMENT_LOG_FORMAT", "json"),
            ("ENRICHMENT_NODE_ID", "edge-1"),
            ("ENRICHMENT_ADMIN_TOKEN", "0123456789012345"),
            ("ENRICHMENT_WORKER_ID", "3"),
            ("ENRICHMENT_HTTP_WORKERS", "2"),
            ("ENRICHMENT_NO_RATE_LIMITS", "true"),
            ("ENRICHMENT_STORAGE", "scylla"),
            ("ENRICHMENT_POSTGRES_URL", "postgres://u:p@h:5432/d"),
            ("ENRICHMENT_SCYLLA_NODES", "db1:9042, db2:9042"),
            ("ENRICHMENT_SCYLLA_KEYSPACE", "chat"),
            ("ENRICHMENT_SCYLLA_REPLICATION", "simple"),
            ("ENRICHMENT_SCYLLA_REPLICATION_FACTOR", "3"),
            ("ENRICHMENT_SCYLLA_CONSISTENCY", "quorum"),
            ("ENRICHMENT_SCYLLA_LOCAL_DATACENTER", "dc1"),
            ("ENRICHMENT_REDIS_URL", "redis://r:6379"),
            ("ENRICHMENT_BLOBS", "s3"),
            ("ENRICHMENT_S3_ENDPOINT", "http://s3:9000"),
            ("ENRICHMENT_S3_BUCKET", "att"),
            ("ENRICHMENT_S3_REGION", "eu-west-1"),
            ("ENRICHMENT_S3_ACCESS_KEY", "ak"),
            ("ENRICHMENT_S3_SECRET_KEY", "sk"),
            ("ENRICHMENT_S3_PATH_STYLE", "false"),
            ("ENRICHMENT_MAX_ATTACHMENT_BYTES", "1000"),
            (
                "ENRICHMENT_ATTACHMENTS_PUBLIC_URL",
                "https://cdn.example.test",
            ),
        ])
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/enrichment"));
        assert_eq!(c.gateway_listen, "0.0.0.0:9001".parse().unwrap());
        assert_eq!(c.gateway_url.as_deref(), Some("wss://gw.example.test"));
        assert_eq!(c.log_format, super::super::LogFormat::Json);
        assert_eq!(c.node_id.as_deref(), Some("edge-1"));
        assert_eq!(
            c.admin_token.as_ref().map(|t| t.expose()),
            Some("0123456789012345"),
            "an all-digit token stays a string"
        );
        assert_eq!((c.worker_id, c.http_workers), (Some(3), 2));
        assert!(!c.rate_limits.enabled);
        assert_eq!(c.storage, super::super::StorageKind::Scylla);
        assert_eq!(
            c.postgres.url.as_ref().map(|u| u.expose()),
            Some("postgres://u:p@h:5432/d")
        );
        assert_eq!(c.scylla.nodes, ["db1:9042", "db2:9042"]);
        assert_eq!(c.scylla.keyspace, "chat");
        assert_eq!(
            c.scylla.replication,
            super::super::ReplicationStrategy::Simple
        );
        assert_eq!(c.scylla.replication_factor, 3);
        assert_eq!(c.scylla.consistency, super::super::Consistency::Quorum);
        assert_eq!(c.scylla.local_datacenter.as_deref(), Some("dc1"));
        assert_eq!(
            c.redis.url.as_ref().map(|u| u.expose()),
            Some("redis://r:6379")
        );
        assert_eq!(c.blobs, super::super::BlobKind::S3);
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://s3:9000"));
        assert_eq!(c.s3.bucket.as_deref(), Some("att"));
        assert_eq!(c.s3.region, "eu-west-1");
        assert_eq!(c.s3.access_key.as_ref().map(|k| k.expose()), Some("ak"));
        assert_eq!(c.s3.secret_key.as_ref().map(|k| k.expose()), Some("sk"));
        assert!(!c.s3.path_style);
        assert_eq!(c.attachments.max_bytes, 1000);
        assert_eq!(
            c.attachments.public_url.as_deref(),
            Some("https://cdn.example.test")
        );
    }

    #[test]
    fn a_legacy_name_yields_to_the_rules_name_and_a_false_switch_changes_nothing() {
        let c = load_env(&[
            ("ENRICHMENT_ATTACHMENTS_MAX_BYTES", "2000"),
            ("ENRICHMENT_MAX_ATTACHMENT_BYTES", "1000"),
        ])
        .unwrap();
        assert_eq!(c.attachments.max_bytes, 2000);
        let toml = file("[rate_limits]\nenabled = false\n");
        let c = Config::load(Sources {
            file: Some(toml.path().to_path_buf()),
            env: env(&[("ENRICHMENT_NO_RATE_LIMITS", "false")]),
            ..Sources::default()
        })
        .unwrap();
        assert!(
            !c.rate_limits.enabled,
            "a false switch leaves the file's value"
        );
        let c = load_env(&[("ENRICHMENT_NO_RATE_LIMITS", "0")]).unwrap();
        assert!(c.rate_limits.enabled);
        let c = load_env(&[("ENRICHMENT_GATEWAY_URL", "")]).unwrap();
        assert_eq!(c.gateway_url, None, "an empty variable counts as unset");
    }

    #[test]
    fn variables_that_name_no_key_are_ignored_but_unknown_file_keys_are_refused() {
        let c = load_env(&[
            ("ENRICHMENT_LOG", "debug"),
            ("ENRICHMENT_CONFIG", "/nonexistent.toml"),
            ("ENRICHMENT_TEST_BACKENDS", "shared"),
            ("ENRICHMENT_GUILDS_MAX_PINZ", "1"),
            ("enrichment_guilds_max_pins", "1"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
        let toml = file("[guilds]\nmax_pinz = 3\n");
        let err = Config::load(Sources {
            file: Some(toml.path().to_path_buf()),
            ..Sources::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_pinz"), "{err}");
        assert!(
            err.contains(&toml.path().display().to_string()),
            "names the file: {err}"
        );
        assert!(err.contains("line 2"), "and the line: {err}");
    }

    #[track_caller]
    fn refused(vars: &[(&str, &str)], names: &[&str]) {
        let err = load_env(vars)
            .expect_err("a bad value is refused")
            .to_string();
        for name in names {
            assert!(err.contains(name), "{err:?} should name {name}");
        }
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_variable() {
        refused(
            &[("ENRICHMENT_GUILDS_MAX_PINS", "lots")],
            &["guilds.max_pins", "ENRICHMENT_GUILDS_MAX_PINS", "lots"],
        );
        refused(
            &[("ENRICHMENT_WORKER_ID", "300")],
            &["worker_id", "ENRICHMENT_WORKER_ID", "300"],
        );
        refused(
            &[("ENRICHMENT_LISTEN", "localhost")],
            &["listen", "ENRICHMENT_LISTEN"],
        );
        refused(
            &[("ENRICHMENT_STORAGE", "postgress")],
            &["storage", "ENRICHMENT_STORAGE", "postgres", "scylla"],
        );
        refused(
            &[("ENRICHMENT_RATE_LIMITS_GLOBAL_PER_SECS", "often")],
            &[
                "rate_limits.global.per_secs",
                "ENRICHMENT_RATE_LIMITS_GLOBAL_PER_SECS",
            ],
        );
        refused(
            &[("ENRICHMENT_MAX_ATTACHMENT_BYTES", "big")],
            &["attachments.max_bytes", "ENRICHMENT_MAX_ATTACHMENT_BYTES"],
        );
        refused(
            &[("ENRICHMENT_NO_RATE_LIMITS", "maybe")],
            &["rate_limits.enabled", "ENRICHMENT_NO_RATE_LIMITS"],
        );
    }

    #[test]
    fn a_decimal_from_the_environment_keeps_its_precision() {
        let c = load_env(&[("ENRICHMENT_RATE_LIMITS_REACTIONS_PER_SECS", "0.1")]).unwrap();
        assert_eq!(c.rate_limits.reactions.per_secs, 0.1);
    }
}
