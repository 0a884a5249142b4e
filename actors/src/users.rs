//! A read-through cache of public user objects, shared by every guild actor.
//!
//! Messages and members are stored with user ids; the wire needs user objects. Users change
//! rarely, so actors and read tasks look them up here instead of in the store, and the account
//! service refreshes an entry whenever it changes a user (and, through the shared state's
//! invalidations, has every other node drop it).
//!
//! The cache is bounded and expiring ([moka](https://docs.rs/moka)): it holds at most
//! `max_entries` users, each for `ttl` after it was read from the store or refreshed, so a
//! node's memory stays flat however many guilds and members it serves, and a change whose
//! invalidation was lost (Redis down) shows here within `ttl` at the latest. A miss costs a
//! store read; [`UserDirectory::get_many`] reads all of its misses with one
//! `UserStore::get_users`, which is how a starting guild actor warms the cache with its
//! members.
//!
//! This is moka's `sync` cache rather than its `future` one: [`UserDirectory::refresh`] and
//! [`UserDirectory::invalidate`] are called from synchronous code, and the future cache only
//! inserts and invalidates asynchronously. Every operation of the cache is in memory (the
//! store reads happen here, outside it), so async tasks may call it directly.

use std::sync::Arc;
use std::time::Duration;

use enrichment_protocol::Snowflake;
use enrichment_protocol::models::User;
use enrichment_storage::{StoreResult, UserStore};
use moka::sync::Cache;

/// How much the cache holds and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCacheLimits {
    /// Users kept at most; the least recently used go first.
    pub max_entries: u64,
    /// How long an entry is trusted after it was read or refreshed.
    pub ttl: Duration,
}

impl Default for UserCacheLimits {
    /// 100,000 users (a few tens of MB) for 10 minutes.
    fn default() -> Self {
        UserCacheLimits {
            max_entries: 100_000,
            ttl: Duration::from_secs(600),
        }
    }
}

#[derive(Clone)]
pub struct UserDirectory {
    store: Arc<dyn UserStore>,
    cache: Cache<Snowflake, User>,
}

impl std::fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDirectory")
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl UserDirectory {
    /// A directory with the default [`UserCacheLimits`].
    pub fn new(store: Arc<dyn UserStore>) -> Self {
        Self::with_limits(store, UserCacheLimits::default())
    }

    pub fn with_limits(store: Arc<dyn UserStore>, limits: UserCacheLimits) -> Self {
        UserDirectory {
            store,
            cache: Cache::builder()
                .max_capacity(limits.max_entries)
                .time_to_live(limits.ttl)
                .build(),
        }
    }

    /// The public view of a user, or `None` if no such user exists.
    pub async fn get(&self, id: Snowflake) -> StoreResult<Option<User>> {
        if let Some(u) = self.cache.get(&id) {
            return Ok(Some(u));
        }
        let user = self.store.get_user(id).await?.map(|u| u.public());
        if let Some(u) = &user {
            self.remember(u);
        }
        Ok(user)
    }

    /// Looks up several users, in the order of `ids`; unknown ids are skipped. Every id not
    /// cached is read with one store call.
    pub async fn get_many(&self, ids: &[Snowflake]) -> StoreResult<Vec<User>> {
        let mut found: Vec<Option<User>> = ids.iter().map(|id| self.cache.get(id)).collect();
        let mut misses: Vec<Snowflake> = ids
            .iter()
            .zip(&found)
            .filter(|(_, hit)| hit.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !misses.is_empty() {
            misses.sort_unstable();
            misses.dedup();
            let loaded: std::collections::HashMap<Snowflake, User> = self
                .store
                .get_users(&misses)
                .await?
                .into_iter()
                .map(|u| {
                    let u = u.public();
                    self.remember(&u);
                    (u.id, u)
                })
                .collect();
            for (slot, id) in found.iter_mut().zip(ids) {
                if slot.is_none() {
                    *slot = loaded.get(id).cloned();
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// A user for display when the account no longer exists (Discord's "Deleted User").
    pub async fn get_or_deleted(&self, id: Snowflake) -> StoreResult<User> {
        Ok(self.get(id).await?.unwrap_or_else(|| deleted_user(id)))
    }

    /// Records a changed user so readers see it at once.
    pub fn refresh(&self, user: &User) {
        self.cache.insert(user.id, user.public());
    }

    /// Drops one cached user, so the next read goes to the store (another node changed it).
    pub fn invalidate(&self, id: Snowflake) {
        self.cache.invalidate(&id);
    }

    /// Only a cached copy: for hot paths that must not wait on storage.
    pub fn cached(&self, id: Snowflake) -> Option<User> {
        self.cache.get(&id)
    }

    /// Caches a user read from the store, unless a refresh got there first: a read that began
    /// before an account change must not overwrite what the change recorded.
    fn remember(&self, user: &User) {
        self.cache.entry(user.id).or_insert(user.clone());
    }
}

pub fn deleted_user(id: Snowflake) -> User {
    User {
        global_name: Some("Deleted User".into()),
        ..User::new(id, "deleted_user")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]
mod tests {
    use enrichment_storage::Stores;
    use enrichment_storage::embedded::EmbeddedStore;
    use enrichment_storage::testsuite::{credentials, user};

    use super::*;

    async fn directory(
        limits: UserCacheLimits,
    ) -> (UserDirectory, Stores, Vec<User>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let stores = Arc::new(EmbeddedStore::open(dir.path()).unwrap()).stores();
        let users: Vec<User> = (1..=5u64)
            .map(|n| {
                user(
                    Snowflake(100 + n),
                    &format!("user{n}"),
                    Some(&format!("u{n}@example.com")),
                )
            })
            .collect();
        for u in &users {
            stores
                .users
                .create_user(u, &credentials(u.id))
                .await
                .unwrap();
        }
        let d = UserDirectory::with_limits(stores.users.clone(), limits);
        (d, stores, users, dir)
    }

    /// Changes a user in the store behind the directory's back.
    async fn rename_in_store(stores: &Stores, u: &User, name: &str) {
        let renamed = User {
            global_name: Some(name.to_owned()),
            ..u.clone()
        };
        stores.users.update_user(&renamed).await.unwrap();
    }

    #[tokio::test]
    async fn get_many_answers_in_order_and_serves_what_it_loaded_from_memory() {
        let (d, stores, users, _dir) = directory(UserCacheLimits::default()).await;
        let unknown = Snowflake(999);
        let asked = [users[2].id, unknown, users[0].id, users[1].id, users[2].id];
        let got = d.get_many(&asked).await.unwrap();
        let ids: Vec<Snowflake> = got.iter().map(|u| u.id).collect();
        assert_eq!(
            ids,
            vec![users[2].id, users[0].id, users[1].id, users[2].id]
        );
        assert!(got.iter().all(|u| u.email.is_none()), "public views only");
        assert!(d.cached(unknown).is_none());
        // Loaded once, then served from memory: a change in the store is not seen.
        rename_in_store(&stores, &users[0], "Changed").await;
        let again = d.get_many(&[users[0].id]).await.unwrap();
        assert_eq!(again[0].global_name, users[0].global_name);
        assert_eq!(
            d.get(users[0].id).await.unwrap().unwrap().global_name,
            users[0].global_name
        );
    }

    #[tokio::test]
    async fn refreshed_users_are_served_at_once_and_invalidated_ones_are_read_again() {
        let (d, stores, users, _dir) = directory(UserCacheLimits::default()).await;
        let id = users[0].id;
        d.get(id).await.unwrap();
        let refreshed = User {
            global_name: Some("Refreshed".into()),
            ..users[0].clone()
        };
        d.refresh(&refreshed);
        assert_eq!(
            d.cached(id).unwrap().global_name.as_deref(),
            Some("Refreshed")
        );
        rename_in_store(&stores, &users[0], "Stored").await;
        d.invalidate(id);
        assert_eq!(d.cached(id), None);
        assert_eq!(
            d.get(id).await.unwrap().unwrap().global_name.as_deref(),
            Some("Stored"),
            "the next read goes to the store"
        );
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl_and_the_cache_stays_within_its_size() {
        let (d, stores, users, _dir) = directory(UserCacheLimits {
            max_entries: 2,
            ttl: Duration::from_millis(200),
        })
        .await;
        let ids: Vec<Snowflake> = users.iter().map(|u| u.id).collect();
        assert_eq!(d.get_many(&ids).await.unwrap().len(), 5);
        d.cache.run_pending_tasks();
        assert!(d.cache.entry_count() <= 2, "{}", d.cache.entry_count());
        d.get(ids[0]).await.unwrap();
        rename_in_store(&stores, &users[0], "Later").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(d.cached(ids[0]), None, "expired");
        assert_eq!(
            d.get_many(&ids[..1]).await.unwrap()[0]
                .global_name
                .as_deref(),
            Some("Later")
        );
    }
}
