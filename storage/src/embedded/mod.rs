//! The embedded backend: every store in one [fjall](https://docs.rs/fjall) database on local disk.
//!
//! This is what a single node runs on when it has no external database. It owns the on-disk
//! layout of users, applications, guilds, messages, signing keys and id leases (`keys.rs`
//! documents every key format) and keeps the crate's contract: a write is durable and visible when its future
//! resolves `Ok`, and a write that fails leaves nothing behind.
//!
//! # Atomicity
//!
//! Every trait method writes through one `Tx`: an in-memory overlay of puts and deletes that
//! reads its own writes and is committed as a single fjall write batch, which fjall applies
//! atomically across keyspaces (one journal entry, one sequence number). Methods that check
//! before they write (unique usernames, emails and invite codes, refresh token rotation,
//! reaction counts, the pin clock) hold a `std::sync::Mutex` from the first read to the commit,
//! so two callers can never both pass the same check. The locks cover only in-memory work and
//! the journal append, never the fsync, so they are held for microseconds.
//!
//! # Durability and group commit
//!
//! fjall appends a committed batch to its journal and flushes it to the OS, but only
//! `Database::persist(PersistMode::SyncAll)` makes it survive a power loss. An fsync costs
//! milliseconds, so one per write would cap the node at a few hundred writes per second no
//! matter how many requests are in flight. Instead a dedicated syncer thread does the fsyncs:
//! a writer commits its batch, sends a request to the syncer and awaits the answer; the syncer
//! takes every request that is waiting, calls `persist` **once**, and answers them all. Because a
//! request is only sent after its batch is in the journal, that one fsync covers every writer
//! it answers. Under load, requests pile up while an fsync runs and the next fsync covers the
//! whole pile, so throughput grows with concurrency while each write still waits for its own
//! data to be on disk.
//!
//! The contract this gives:
//! - `Ok` means the batch is fsynced (journal, `SyncAll`) and visible to every later read.
//! - A committed batch becomes visible to readers slightly *before* its fsync completes. Only
//!   its own writer is held back; a crash in that window loses the batch, and its writer never
//!   saw `Ok`.
//! - If an fsync fails, fjall poisons the database: the writers waiting on it get an error and
//!   every later operation fails, so nothing is acknowledged that may not be on disk. The node
//!   must restart, replaying the journal (see fjall's notes on fsync failures).
//!
//! Blocking fjall calls run on tokio's blocking pool (`spawn_blocking`), so scans and commits
//! never stall the async workers.
//!
//! Dropping the last handle to an [`EmbeddedStore`] stops the syncer thread and closes the
//! database, releasing its lock file, so the same directory can be reopened in the process.

mod guilds;
mod keys;
mod messages;
mod nodes;
mod signing_keys;
mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult, Stores};

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Backend(format!("fjall: {e}"))
    }
}

/// The keyspaces (fjall's column families) of the database; `keys.rs` gives their key formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ks {
    Users,
    Credentials,
    Usernames,
    Emails,
    Refresh,
    RevokedFamilies,
    UserFamilies,
    Apps,
    AppByBot,
    BotTokens,
    BotTokenOf,
    Guilds,
    UserGuilds,
    ChannelGuild,
    Invites,
    Messages,
    Reactions,
    ReactionEmoji,
    ReactionOrder,
    Pins,
    PinOf,
    SigningKeys,
    IdLeases,
    GuildOwners,
    AuditLog,
    WebhookGuild,
    UserPrivate,
    DmPairs,
    Relationships,
}

impl Ks {
    const ALL: [Ks; 29] = [
        Ks::Users,
        Ks::Credentials,
        Ks::Usernames,
        Ks::Emails,
        Ks::Refresh,
        Ks::RevokedFamilies,
        Ks::UserFamilies,
        Ks::Apps,
        Ks::AppByBot,
        Ks::BotTokens,
        Ks::BotTokenOf,
        Ks::Guilds,
        Ks::UserGuilds,
        Ks::ChannelGuild,
        Ks::Invites,
        Ks::Messages,
        Ks::Reactions,
        Ks::ReactionEmoji,
        Ks::ReactionOrder,
        Ks::Pins,
        Ks::PinOf,
        Ks::SigningKeys,
        Ks::IdLeases,
        Ks::GuildOwners,
        Ks::AuditLog,
        Ks::WebhookGuild,
        Ks::UserPrivate,
        Ks::DmPairs,
        Ks::Relationships,
    ];

    /// On-disk names; changing one orphans the data stored under it.
    fn name(self) -> &'static str {
        match self {
            Ks::Users => "users",
            Ks::Credentials => "credentials",
            Ks::Usernames => "usernames",
            Ks::Emails => "emails",
            Ks::Refresh => "refresh_tokens",
            Ks::RevokedFamilies => "refresh_revoked_families",
            Ks::UserFamilies => "user_refresh_families",
            Ks::Apps => "applications",
            Ks::AppByBot => "application_by_bot",
            Ks::BotTokens => "bot_tokens",
            Ks::BotTokenOf => "bot_token_of",
            Ks::Guilds => "guilds",
            Ks::UserGuilds => "user_guilds",
            Ks::ChannelGuild => "channel_guild",
            Ks::Invites => "invites",
            Ks::Messages => "messages",
            Ks::Reactions => "reactions",
            Ks::ReactionEmoji => "reaction_emoji",
            Ks::ReactionOrder => "reaction_order",
            Ks::Pins => "pins",
            Ks::PinOf => "pin_of",
            Ks::SigningKeys => "signing_keys",
            Ks::IdLeases => "id_leases",
            Ks::GuildOwners => "guild_owners",
            Ks::AuditLog => "audit_log",
            Ks::WebhookGuild => "webhook_guild",
            Ks::UserPrivate => "user_private_channels",
            Ks::DmPairs => "dm_pairs",
            Ks::Relationships => "relationships",
        }
    }
}

/// The database and its keyspaces; shared with blocking tasks.
pub(crate) struct Inner {
    db: Database,
    keyspaces: [Keyspace; Ks::ALL.len()],
    /// Serializes the check-then-write sections on usernames, emails and bot tokens.
    names_lock: Mutex<()>,
    /// Serializes refresh token rotation, so a token is spent exactly once.
    refresh_lock: Mutex<()>,
    /// Serializes guild batches: invite codes are unique across guilds, whose actors run in
    /// parallel.
    guilds_lock: Mutex<()>,
    /// Serializes read-modify-writes on messages, reactions and pins.
    messages_lock: Mutex<()>,
    /// Serializes the check-then-write sections on signing keys.
    keys_lock: Mutex<()>,
    /// Serializes id-pair claims, renewals and releases.
    leases_lock: Mutex<()>,
}

impl Inner {
    fn ks(&self, ks: Ks) -> &Keyspace {
        &self.keyspaces[ks as usize]
    }

    fn get(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.ks(ks).get(key)?.map(|v| v.to_vec()))
    }

    fn get_json<T: DeserializeOwned>(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<T>> {
        self.get(ks, key)?.map(|v| decode(&v)).transpose()
    }
}

/// Locks a mutex that only guards a critical section (no data), so a poisoned lock is safe to
/// take over: a panicking holder never committed, and the store's state lives in fjall.
fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Whether a [`Tx`] wrote anything, i.e. whether the caller must wait for an fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Committed(bool);

/// One atomic write: puts and deletes buffered in memory, committed as one fjall batch.
///
/// Reads go through the overlay first, so a batch sees its own earlier writes; that matters for
/// guild batches (a `PutMember` followed by a `DeleteGuild`) and makes the last write to a key
/// win, which a raw fjall batch does not promise (all its items share one sequence number).
pub(crate) struct Tx<'a> {
    inner: &'a Inner,
    ops: BTreeMap<(Ks, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Tx<'a> {
    fn new(inner: &'a Inner) -> Self {
        Tx {
            inner,
            ops: BTreeMap::new(),
        }
    }

    fn get(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        if let Some(v) = self.ops.get(&(ks, key.to_vec())) {
            return Ok(v.clone());
        }
        self.inner.get(ks, key)
    }

    fn get_json<T: DeserializeOwned>(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<T>> {
        self.get(ks, key)?.map(|v| decode(&v)).transpose()
    }

    fn exists(&self, ks: Ks, key: &[u8]) -> StoreResult<bool> {
        Ok(self.get(ks, key)?.is_some())
    }

    fn put(&mut self, ks: Ks, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.insert((ks, key.into()), Some(value.into()));
    }

    fn put_json<T: Serialize>(
        &mut self,
        ks: Ks,
        key: impl Into<Vec<u8>>,
        value: &T,
    ) -> StoreResult<()> {
        let bytes = encode(value)?;
        self.put(ks, key, bytes);
        Ok(())
    }

    fn del(&mut self, ks: Ks, key: impl Into<Vec<u8>>) {
        self.ops.insert((ks, key.into()), None);
    }

    /// Every key under `prefix`, as the batch would leave it, ascending.
    fn keys_with_prefix(&self, ks: Ks, prefix: &[u8]) -> StoreResult<Vec<Vec<u8>>> {
        let mut keys = BTreeSet::new();
        for guard in self.inner.ks(ks).prefix(prefix) {
            keys.insert(guard.key()?.to_vec());
        }
        for ((k, key), value) in self.ops.range((ks, prefix.to_vec())..) {
            if *k != ks || !key.starts_with(prefix) {
                break;
            }
            if value.is_some() {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Deletes every key under `prefix`.
    fn del_prefix(&mut self, ks: Ks, prefix: &[u8]) -> StoreResult<()> {
        for key in self.keys_with_prefix(ks, prefix)? {
            self.del(ks, key);
        }
        Ok(())
    }

    /// Writes everything as one atomic batch (journaled, not yet fsynced).
    fn commit(self) -> StoreResult<Committed> {
        if self.ops.is_empty() {
            return Ok(Committed(false));
        }
        let mut batch = self.inner.db.batch();
        for ((ks, key), value) in self.ops {
            match value {
                Some(value) => batch.insert(self.inner.ks(ks), key, value),
                None => batch.remove(self.inner.ks(ks), key),
            }
        }
        batch.commit()?;
        Ok(Committed(true))
    }
}

type SyncReply = oneshot::Sender<Result<(), String>>;

/// The group-commit thread; see the module docs.
struct Syncer {
    requests: Option<mpsc::Sender<SyncReply>>,
    thread: Option<JoinHandle<()>>,
    /// fsyncs done so far, to show in tests that writers share them.
    #[cfg(test)]
    fsyncs: Arc<std::sync::atomic::AtomicU64>,
}

impl Syncer {
    fn start(db: Database) -> StoreResult<Syncer> {
        let (tx, rx) = mpsc::channel::<SyncReply>();
        #[cfg(test)]
        let fsyncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        #[cfg(test)]
        let counter = Arc::clone(&fsyncs);
        let thread = std::thread::Builder::new()
            .name("fjall-group-commit".into())
            .spawn(move || {
                // Ends when the store drops its sender; the database handle goes with it.
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    let result = db.persist(PersistMode::SyncAll).map_err(|e| {
                        tracing::error!(error = %e, "fsync of the journal failed");
                        format!("fjall persist: {e}")
                    });
                    tracing::trace!(writers = waiting.len(), "group commit");
                    #[cfg(test)]
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    for reply in waiting {
                        // The writer may have been cancelled; its batch is durable all the same.
                        let _ = reply.send(result.clone());
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("spawn syncer: {e}")))?;
        Ok(Syncer {
            requests: Some(tx),
            thread: Some(thread),
            #[cfg(test)]
            fsyncs,
        })
    }

    async fn sync(&self) -> StoreResult<()> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or_else(|| StoreError::Backend("store is closed".into()))?
            .send(tx)
            .map_err(|_| StoreError::Backend("syncer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("syncer stopped".into()))?
            .map_err(StoreError::Backend)
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has answered everything queued.
        self.requests.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the group-commit thread panicked");
        }
    }
}

/// Every store on one fjall database. Cheap to share: wrap it in an [`Arc`] and call
/// [`EmbeddedStore::stores`].
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    syncer: Syncer,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the database in the directory `path`.
    ///
    /// Blocks while fjall recovers its journal; call it at startup, before serving.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let db = Database::builder(path).open()?;
        let mut keyspaces = Vec::with_capacity(Ks::ALL.len());
        for ks in Ks::ALL {
            keyspaces.push(db.keyspace(ks.name(), KeyspaceCreateOptions::default)?);
        }
        let keyspaces: [Keyspace; Ks::ALL.len()] = keyspaces
            .try_into()
            .map_err(|_| StoreError::Backend("keyspace count mismatch".into()))?;
        let syncer = Syncer::start(db.clone())?;
        let inner = Inner {
            db,
            keyspaces,
            names_lock: Mutex::new(()),
            refresh_lock: Mutex::new(()),
            guilds_lock: Mutex::new(()),
            messages_lock: Mutex::new(()),
            keys_lock: Mutex::new(()),
            leases_lock: Mutex::new(()),
        };
        users::index_user_families(&inner)?;
        Ok(EmbeddedStore {
            inner: Arc::new(inner),
            syncer,
        })
    }

    /// Every store, all backed by this one database.
    pub fn stores(self: Arc<Self>) -> Stores {
        Stores {
            users: self.clone(),
            applications: self.clone(),
            guilds: self.clone(),
            messages: self.clone(),
            keys: self.clone(),
            nodes: self.clone(),
            leases: self,
        }
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
    }

    /// Runs `f`, which commits at most one [`Tx`], then waits until that batch is fsynced.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Inner) -> StoreResult<(T, Committed)> + Send + 'static,
        T: Send + 'static,
    {
        let (out, committed) = self.blocking(f).await?;
        if committed.0 {
            self.syncer.sync().await?;
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]
mod tests {
    use std::sync::atomic::Ordering;

    use enrichment_protocol::Snowflake;

    use super::*;
    use crate::MessageStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let writers = 200u64;
        let mut tasks = Vec::new();
        for n in 0..writers {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store
                    .add_reaction(Snowflake(1), Snowflake(2), "x", Snowflake(n))
                    .await
            }));
        }
        for task in tasks {
            assert!(task.await.unwrap().unwrap());
        }
        let fsyncs = store.syncer.fsyncs.load(Ordering::Relaxed);
        assert!(fsyncs >= 1);
        assert!(fsyncs < writers, "{fsyncs} fsyncs for {writers} writers");
        // A write that changes nothing waits for no fsync.
        assert!(
            !store
                .add_reaction(Snowflake(1), Snowflake(2), "x", Snowflake(0))
                .await
                .unwrap()
        );
        assert_eq!(store.syncer.fsyncs.load(Ordering::Relaxed), fsyncs);
    }
}
