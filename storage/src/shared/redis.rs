//! [`SharedState`] in Redis, through one multiplexed `ConnectionManager` (RESP3, so presence
//! announcements and invalidations arrive as pushes on the same connection, from two channels,
//! and are resubscribed after a reconnect).
//!
//! Failure handling is a small circuit breaker: the first failed command marks Redis down
//! (one warning in the log, `enrichment_redis_up` 0, `enrichment_redis_errors_total` counts
//! every failure), later calls fail at once instead of each waiting for a timeout, and a probe
//! pings every [`PROBE_EVERY`] until Redis answers again, which marks it up (one info line).
//! [`super::fallback::FallbackShared`] answers from the in-process state meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{Presence, Status};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ProtocolVersion, PushKind, Value};
use tokio::sync::broadcast;

use super::{
    Invalidation, PresenceChange, RateLimit, RateOutcome, SessionLocation, SharedHealth,
    SharedState, WindowOutcome, keys,
};
use crate::{StoreError, StoreResult};

/// How often a probe checks whether Redis is back.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Announcements buffered per subscriber; a subscriber further behind skips the oldest.
const CHANGES_BUFFER: usize = 1024;

/// GCRA over every key in KEYS, all or nothing. ARGV holds, per key, the emission interval and
/// the burst (in microseconds and requests), then the cost (0 only reads). Time is Redis's own
/// clock, so nodes with skewed clocks still agree. Returns `{0, remaining, reset_after_us}`
/// for the last key when allowed, `{i, retry_after_us, 0}` when key i refused.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[#ARGV])
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - interval * burst
  if now < allow_at then
    return {i, math.ceil(allow_at - now), 0}
  end
  tats[i] = {new_tat, math.floor((now - allow_at) / interval)}
end
local last = tats[#KEYS]
if cost > 0 then
  for i, key in ipairs(KEYS) do
    local ttl = math.ceil((tats[i][1] - now) / 1000)
    if ttl > 0 then redis.call('SET', key, tats[i][1], 'PX', ttl) end
  end
end
return {0, last[2], math.ceil(last[1] - now)}
"#;

/// A fixed-window counter on KEYS[1]: ARGV is the limit, the window in milliseconds and the
/// cost (0 only reads). Returns `{allowed, remaining, reset_after_ms}`.
const WINDOW: &str = r#"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = window end
if cost > 0 then
  if n + cost > limit then
    return {0, math.max(limit - n, 0), ttl}
  end
  n = redis.call('INCRBY', KEYS[1], cost)
  if n == cost then
    redis.call('PEXPIRE', KEYS[1], window)
    ttl = window
  end
end
return {1, math.max(limit - n, 0), ttl}
"#;

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    pub url: String,
    /// Prefix of every key and channel.
    pub key_prefix: String,
    pub connect_timeout: Duration,
    /// A command that takes longer counts as a failure.
    pub command_timeout: Duration,
}

#[derive(Debug)]
struct Health {
    up: AtomicBool,
}

impl Health {
    fn failed(&self, err: &dyn std::fmt::Display) {
        metrics::counter!("enrichment_redis_errors_total").increment(1);
        if self.up.swap(false, Ordering::AcqRel) {
            metrics::gauge!("enrichment_redis_up").set(0.0);
            tracing::warn!(
                error = %err,
                "Redis is unreachable: running degraded (per-node rate limits, presence and \
                 session routing) until it is back"
            );
        }
    }

    fn recovered(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            metrics::gauge!("enrichment_redis_up").set(1.0);
            tracing::info!("Redis is reachable again: shared state resumed");
        }
    }
}

/// Shared state in Redis. Dropping it stops its probe.
pub struct RedisShared {
    conn: ConnectionManager,
    prefix: String,
    command_timeout: Duration,
    health: Arc<Health>,
    gcra: redis::Script,
    window: redis::Script,
    changes: broadcast::Sender<PresenceChange>,
    invalidations: broadcast::Sender<Invalidation>,
    probe: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisShared")
            .field("prefix", &self.prefix)
            .field("up", &self.health.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for RedisShared {
    fn drop(&mut self) {
        self.probe.abort();
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl RedisShared {
    /// Connects, subscribes to presence announcements, and checks that scripts run. Fails
    /// within `connect_timeout`, naming the setting, when Redis cannot be used.
    pub async fn connect(options: RedisOptions) -> StoreResult<RedisShared> {
        let setting = "redis.url (ENRICHMENT_REDIS_URL)";
        let info = redis::IntoConnectionInfo::into_connection_info(options.url.as_str())
            .map_err(|e| StoreError::Backend(format!("{setting} is not a Redis URL: {e}")))?;
        let addr = info.addr().to_string();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = redis::Client::open(info)
            .map_err(|e| StoreError::Backend(format!("{setting}: {e}")))?;
        let (tx, _) = broadcast::channel(CHANGES_BUFFER);
        let (invalidations, _) = broadcast::channel(CHANGES_BUFFER);
        let presence_channel = keys::presence_channel(&options.key_prefix);
        let invalidation_channel = keys::invalidation_channel(&options.key_prefix);
        let pushes = Pushes {
            presence_channel: presence_channel.clone(),
            presence: tx.clone(),
            invalidation_channel: invalidation_channel.clone(),
            invalidations: invalidations.clone(),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1))
            .set_automatic_resubscription()
            .set_push_sender(move |push: redis::PushInfo| {
                pushes.deliver(&push);
                Ok::<(), redis::aio::SendError>(())
            });
        let unreachable = |e: &dyn std::fmt::Display| {
            StoreError::Backend(format!("cannot use Redis at {addr} ({setting}): {e}"))
        };
        let mut conn = tokio::time::timeout(
            options.connect_timeout,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| unreachable(&format!("no answer within {:?}", options.connect_timeout)))?
        .map_err(|e| unreachable(&e))?;
        conn.subscribe(vec![presence_channel, invalidation_channel])
            .await
            .map_err(|e| unreachable(&e))?;
        let gcra = redis::Script::new(GCRA);
        let window = redis::Script::new(WINDOW);
        for script in [&gcra, &window] {
            script
                .prepare_invoke()
                .load_async(&mut conn)
                .await
                .map_err(|e| unreachable(&e))?;
        }
        let health = Arc::new(Health {
            up: AtomicBool::new(true),
        });
        metrics::gauge!("enrichment_redis_up").set(1.0);
        let probe = tokio::spawn(probe(
            conn.clone(),
            Arc::downgrade(&health),
            options.command_timeout,
        ));
        Ok(RedisShared {
            conn,
            prefix: options.key_prefix,
            command_timeout: options.command_timeout,
            health,
            gcra,
            window,
            changes: tx,
            invalidations,
            probe,
        })
    }

    /// The key prefix (for callers that build keys with [`keys`]).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs one Redis call under the breaker and the command timeout.
    async fn run<T, F>(&self, call: F) -> StoreResult<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.health.up.load(Ordering::Acquire) {
            return Err(StoreError::Backend("redis: unavailable".into()));
        }
        match tokio::time::timeout(self.command_timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.health.failed(&e);
                Err(backend(e))
            }
            Err(_) => {
                let e = format!("no answer within {:?}", self.command_timeout);
                self.health.failed(&e);
                Err(backend(e))
            }
        }
    }

    async fn gcra(&self, keys: &[(String, RateLimit)], cost: u32) -> StoreResult<Vec<i64>> {
        let mut inv = self.gcra.prepare_invoke();
        for (key, limit) in keys {
            inv.key(key)
                .arg(micros(limit.interval()))
                .arg(limit.limit.max(1));
        }
        inv.arg(cost);
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = self.run(inv.invoke_async(&mut conn)).await?;
        if reply.len() != 3 {
            return Err(backend(format!("unexpected GCRA reply {reply:?}")));
        }
        Ok(reply)
    }
}

/// Pings while Redis is marked down; stops when the state is dropped.
async fn probe(conn: ConnectionManager, health: std::sync::Weak<Health>, timeout: Duration) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(health) = health.upgrade() else {
            return;
        };
        if health.up.load(Ordering::Acquire) {
            continue;
        }
        let mut c = conn.clone();
        let cmd = redis::cmd("PING");
        let ping = tokio::time::timeout(timeout, cmd.query_async::<String>(&mut c));
        if let Ok(Ok(_)) = ping.await {
            health.recovered();
        }
    }
}

/// Where the pushes of the two channels go.
struct Pushes {
    presence_channel: String,
    presence: broadcast::Sender<PresenceChange>,
    invalidation_channel: String,
    invalidations: broadcast::Sender<Invalidation>,
}

impl Pushes {
    /// Decodes a pub/sub message by its channel and hands it to that channel's subscribers.
    /// No subscriber yet is fine: nobody needs this announcement.
    fn deliver(&self, push: &redis::PushInfo) {
        if push.kind != PushKind::Message {
            return;
        }
        let bulk = |i: usize| match push.data.get(i) {
            Some(Value::BulkString(bytes)) => Some(bytes.as_slice()),
            _ => None,
        };
        let (Some(channel), Some(payload)) = (bulk(0), bulk(1)) else {
            return;
        };
        if channel == self.presence_channel.as_bytes() {
            if let Ok(change) = serde_json::from_slice(payload) {
                let _ = self.presence.send(change);
            }
        } else if channel == self.invalidation_channel.as_bytes()
            && let Ok(inv) = serde_json::from_slice(payload)
        {
            let _ = self.invalidations.send(inv);
        }
    }
}

#[async_trait]
impl SharedState for RedisShared {
    fn health(&self) -> SharedHealth {
        if self.health.up.load(Ordering::Acquire) {
            SharedHealth::Up
        } else {
            SharedHealth::Down
        }
    }

    async fn rate_limit(&self, keys: &[(String, RateLimit)]) -> StoreResult<RateOutcome> {
        if keys.is_empty() {
            return Err(backend("rate_limit needs at least one key"));
        }
        let r = self.gcra(keys, 1).await?;
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(if r[0] == 0 {
            RateOutcome::Allowed {
                remaining: u32::try_from(r[1]).unwrap_or(0),
                reset_after: us(r[2]),
            }
        } else {
            RateOutcome::Limited {
                index: usize::try_from(r[0] - 1).unwrap_or(0),
                retry_after: us(r[1]),
            }
        })
    }

    async fn rate_peek(&self, key: &str, limit: RateLimit) -> StoreResult<(u32, Duration)> {
        let r = self.gcra(&[(key.to_owned(), limit)], 0).await?;
        let remaining = u32::try_from(r[1]).unwrap_or(0).min(limit.limit);
        let reset_after = Duration::from_micros(u64::try_from(r[2]).unwrap_or(0));
        Ok((remaining, reset_after))
    }

    async fn window_hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        cost: u32,
    ) -> StoreResult<WindowOutcome> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut inv = self.window.prepare_invoke();
        inv.key(key).arg(limit).arg(window_ms).arg(cost);
        let mut conn = self.conn.clone();
        let r: Vec<i64> = self.run(inv.invoke_async(&mut conn)).await?;
        let [allowed, remaining, reset_ms] = r[..] else {
            return Err(backend(format!("unexpected window reply {r:?}")));
        };
        Ok(WindowOutcome {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_after: Duration::from_millis(u64::try_from(reset_ms).unwrap_or(0)),
        })
    }

    async fn put_session(
        &self,
        session_id: &str,
        location: &SessionLocation,
        ttl: Duration,
    ) -> StoreResult<()> {
        let value = serde_json::to_string(location).map_err(backend)?;
        let key = keys::session(&self.prefix, session_id);
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(conn.pset_ex::<_, _, ()>(key, value, ttl_ms)).await
    }

    async fn session(&self, session_id: &str) -> StoreResult<Option<SessionLocation>> {
        let key = keys::session(&self.prefix, session_id);
        let mut conn = self.conn.clone();
        let value: Option<String> = self.run(conn.get(key)).await?;
        value
            .map(|v| serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn remove_session(&self, session_id: &str) -> StoreResult<()> {
        let key = keys::session(&self.prefix, session_id);
        let mut conn = self.conn.clone();
        self.run(conn.del::<_, ()>(key)).await
    }

    async fn put_presence(&self, change: &PresenceChange, ttl: Duration) -> StoreResult<()> {
        let p = &change.presence;
        let key = keys::presence(&self.prefix, p.user.id.get());
        let announcement = serde_json::to_string(change).map_err(backend)?;
        let mut pipe = redis::pipe();
        if p.status == Status::Offline {
            pipe.del(&key).ignore();
        } else {
            let stored = serde_json::to_string(p).map_err(backend)?;
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            pipe.pset_ex(&key, stored, ttl_ms).ignore();
        }
        pipe.publish(keys::presence_channel(&self.prefix), announcement)
            .ignore();
        let mut conn = self.conn.clone();
        self.run(pipe.query_async::<()>(&mut conn)).await
    }

    async fn presences(&self, user_ids: &[Snowflake]) -> StoreResult<Vec<Option<Presence>>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One GET per key in a pipeline rather than MGET: the keys hash to different slots,
        // and a cluster client splits a pipeline by slot where it would refuse the MGET.
        let mut pipe = redis::pipe();
        for id in user_ids {
            pipe.get(keys::presence(&self.prefix, id.get()));
        }
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = self.run(pipe.query_async(&mut conn)).await?;
        Ok(values
            .into_iter()
            .map(|v| v.and_then(|v| serde_json::from_str(&v).ok()))
            .collect())
    }

    fn presence_changes(&self) -> broadcast::Receiver<PresenceChange> {
        self.changes.subscribe()
    }

    async fn publish_invalidation(&self, invalidation: &Invalidation) -> StoreResult<()> {
        let message = serde_json::to_string(invalidation).map_err(backend)?;
        let channel = keys::invalidation_channel(&self.prefix);
        let mut conn = self.conn.clone();
        self.run(conn.publish::<_, _, ()>(channel, message)).await
    }

    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.invalidations.subscribe()
    }
}
