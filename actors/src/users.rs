//! A read-through cache of public user objects, shared by every guild actor.
//!
//! Messages and members are stored with user ids; the wire needs user objects. Users change
//! rarely, so actors and read tasks look them up here instead of in the store, and the account
//! service refreshes an entry whenever it changes a user (and, through the shared state's
//! invalidations, has every other node drop it).

use std::sync::Arc;

use dashmap::DashMap;
use enrichment_protocol::Snowflake;
use enrichment_protocol::models::User;
use enrichment_storage::{StoreResult, UserStore};

#[derive(Clone)]
pub struct UserDirectory {
    store: Arc<dyn UserStore>,
    cache: Arc<DashMap<Snowflake, User>>,
}

impl std::fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDirectory")
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl UserDirectory {
    pub fn new(store: Arc<dyn UserStore>) -> Self {
        UserDirectory {
            store,
            cache: Arc::new(DashMap::new()),
        }
    }

    /// The public view of a user, or `None` if no such user exists.
    pub async fn get(&self, id: Snowflake) -> StoreResult<Option<User>> {
        if let Some(u) = self.cache.get(&id) {
            return Ok(Some(u.clone()));
        }
        let user = self.store.get_user(id).await?.map(|u| u.public());
        if let Some(u) = &user {
            self.cache.insert(id, u.clone());
        }
        Ok(user)
    }

    /// Looks up several users; unknown ids are skipped.
    pub async fn get_many(&self, ids: &[Snowflake]) -> StoreResult<Vec<User>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.get(*id).await? {
                out.push(u);
            }
        }
        Ok(out)
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
        self.cache.remove(&id);
    }

    /// Only a cached copy: for hot paths that must not wait on storage.
    pub fn cached(&self, id: Snowflake) -> Option<User> {
        self.cache.get(&id).map(|u| u.clone())
    }
}

pub fn deleted_user(id: Snowflake) -> User {
    User {
        global_name: Some("Deleted User".into()),
        ..User::new(id, "deleted_user")
    }
}
