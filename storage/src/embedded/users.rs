//! Users, credentials, refresh tokens and applications on fjall.

use async_trait::async_trait;
use enrichment_protocol::models::User;
use enrichment_protocol::{Snowflake, Timestamp};
use fjall::Readable;
use serde::{Deserialize, Serialize};

use super::keys::{concat, id, read_id};
use super::{Committed, EmbeddedStore, Inner, Ks, Tx, decode, lock};
use crate::{
    ApplicationRecord, ApplicationStore, Credentials, RefreshTokenRecord, RelationshipRecord,
    RotateOutcome, StoreError, StoreResult, UserStore,
};

/// A refresh token as stored: spent tokens are kept so that their reuse can be detected.
#[derive(Serialize, Deserialize)]
struct StoredRefresh {
    record: RefreshTokenRecord,
    spent: bool,
}

/// Fills `user_refresh_families` from the stored refresh tokens when a database written before
/// that index existed is opened (the index is empty while tokens are not), so a password
/// change also ends the sessions opened before the upgrade. Runs once: afterwards the index is
/// written with every new family.
pub(super) fn index_user_families(inner: &Inner) -> StoreResult<()> {
    if !inner.ks(Ks::UserFamilies).is_empty()? || inner.ks(Ks::Refresh).is_empty()? {
        return Ok(());
    }
    let mut tx = Tx::new(inner);
    for entry in inner.ks(Ks::Refresh).iter() {
        let (_, value) = entry.into_inner()?;
        let stored: StoredRefresh = decode(&value)?;
        tx.put(Ks::UserFamilies, family_key(&stored.record), Vec::new());
    }
    // Journaled with the next write's fsync; lost before it, the index is empty again and
    // rebuilt by the next open.
    let _committed = tx.commit()?;
    Ok(())
}

/// The `user_refresh_families` key of a token's family.
fn family_key(record: &RefreshTokenRecord) -> Vec<u8> {
    concat(&[&id(record.user_id), &id(record.family_id)])
}

/// Points the unique index `ks[value]` at `user_id`, failing with `Conflict(field)` if another
/// user holds it. Callers hold `names_lock`.
fn claim(
    tx: &mut Tx<'_>,
    ks: Ks,
    value: &str,
    user_id: Snowflake,
    field: &'static str,
) -> StoreResult<()> {
    let key = value.to_lowercase().into_bytes();
    if let Some(holder) = tx.get(ks, &key)?
        && read_id(&holder, 0)? != user_id
    {
        return Err(StoreError::Conflict(field));
    }
    tx.put(ks, key, id(user_id));
    Ok(())
}

/// Releases `ks[value]` if `user_id` holds it.
fn release(tx: &mut Tx<'_>, ks: Ks, value: &str, user_id: Snowflake) -> StoreResult<()> {
    let key = value.to_lowercase().into_bytes();
    if let Some(holder) = tx.get(ks, &key)?
        && read_id(&holder, 0)? == user_id
    {
        tx.del(ks, key);
    }
    Ok(())
}

/// Writes `user` and moves its username and email indexes from `old` (if any) to the new values.
fn put_user(tx: &mut Tx<'_>, user: &User, old: Option<&User>) -> StoreResult<()> {
    if let Some(old) = old {
        if old.username.to_lowercase() != user.username.to_lowercase() {
            release(tx, Ks::Usernames, &old.username, old.id)?;
        }
        if let Some(email) = &old.email
            && user.email.as_ref().map(|e| e.to_lowercase()) != Some(email.to_lowercase())
        {
            release(tx, Ks::Emails, email, old.id)?;
        }
    }
    claim(tx, Ks::Usernames, &user.username, user.id, "username")?;
    if let Some(email) = &user.email {
        claim(tx, Ks::Emails, email, user.id, "email")?;
    }
    tx.put_json(Ks::Users, id(user.id), user)
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &User, credentials: &Credentials) -> StoreResult<()> {
        let (user, credentials) = (user.clone(), credentials.clone());
        self.write(move |inner| {
            let _guard = lock(&inner.names_lock);
            let mut tx = Tx::new(inner);
            put_user(&mut tx, &user, None)?;
            tx.put_json(Ks::Credentials, id(user.id), &credentials)?;
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn get_user(&self, user_id: Snowflake) -> StoreResult<Option<User>> {
        self.blocking(move |inner| inner.get_json(Ks::Users, &id(user_id)))
            .await
    }

    /// One blocking call reading one snapshot.
    async fn get_users(&self, ids: &[Snowflake]) -> StoreResult<Vec<User>> {
        let ids = ids.to_vec();
        self.blocking(move |inner| {
            let snap = inner.db.snapshot();
            let mut out = Vec::with_capacity(ids.len());
            for user_id in ids {
                if let Some(v) = snap.get(inner.ks(Ks::Users), id(user_id))? {
                    out.push(decode(&v)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<Snowflake>> {
        let key = login.to_lowercase().into_bytes();
        self.blocking(move |inner| {
            // Usernames cannot contain '@' (validated before they get here), so the two indexes
            // never both hold the same login.
            for ks in [Ks::Emails, Ks::Usernames] {
                if let Some(v) = inner.get(ks, &key)? {
                    return read_id(&v, 0).map(Some);
                }
            }
            Ok(None)
        })
        .await
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write(move |inner| {
            let _guard = lock(&inner.names_lock);
            let mut tx = Tx::new(inner);
            let old: Option<User> = tx.get_json(Ks::Users, &id(user.id))?;
            put_user(&mut tx, &user, old.as_ref())?;
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn get_credentials(&self, user_id: Snowflake) -> StoreResult<Option<Credentials>> {
        self.blocking(move |inner| inner.get_json(Ks::Credentials, &id(user_id)))
            .await
    }

    async fn put_credentials(&self, credentials: &Credentials) -> StoreResult<()> {
        let credentials = credentials.clone();
        self.write(move |inner| {
            let mut tx = Tx::new(inner);
            tx.put_json(Ks::Credentials, id(credentials.user_id), &credentials)?;
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        let stored = StoredRefresh {
            record: token.clone(),
            spent: false,
        };
        self.write(move |inner| {
            let mut tx = Tx::new(inner);
            tx.put(Ks::UserFamilies, family_key(&stored.record), Vec::new());
            tx.put_json(
                Ks::Refresh,
                stored.record.token_hash.clone().into_bytes(),
                &stored,
            )?;
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshTokenRecord,
        now: Timestamp,
    ) -> StoreResult<RotateOutcome> {
        let (old_hash, new) = (old_hash.to_owned(), new.clone());
        self.write(move |inner| {
            let _guard = lock(&inner.refresh_lock);
            let mut tx = Tx::new(inner);
            let Some(mut old) = tx.get_json::<StoredRefresh>(Ks::Refresh, old_hash.as_bytes())?
            else {
                return Ok((RotateOutcome::Invalid, Committed(false)));
            };
            let family = old.record.family_id;
            if tx.exists(Ks::RevokedFamilies, &id(family))? || now >= old.record.expires_at {
                return Ok((RotateOutcome::Invalid, Committed(false)));
            }
            if old.spent {
                tx.put(Ks::RevokedFamilies, id(family), Vec::new());
                return Ok((RotateOutcome::Reused { family_id: family }, tx.commit()?));
            }
            let user_id = old.record.user_id;
            old.spent = true;
            tx.put_json(Ks::Refresh, old_hash.into_bytes(), &old)?;
            // The new token inherits the family and user of the one it replaces, whatever the
            // caller put in those fields: that is what makes reuse detection cover the chain.
            let new = StoredRefresh {
                record: RefreshTokenRecord {
                    family_id: family,
                    user_id,
                    ..new
                },
                spent: false,
            };
            tx.put_json(
                Ks::Refresh,
                new.record.token_hash.clone().into_bytes(),
                &new,
            )?;
            Ok((
                RotateOutcome::Rotated {
                    user_id,
                    family_id: family,
                },
                tx.commit()?,
            ))
        })
        .await
    }

    async fn revoke_refresh_family(&self, family_id: Snowflake) -> StoreResult<()> {
        self.write(move |inner| {
            let mut tx = Tx::new(inner);
            tx.put(Ks::RevokedFamilies, id(family_id), Vec::new());
            Ok(((), tx.commit()?))
        })
        .await
    }

    /// A token is live when it is stored, not yet rotated and its family is not revoked. Expiry
    /// is not checked: the trait gives no clock, and a logout with an expired token is harmless.
    async fn refresh_token_family(&self, token_hash: &str) -> StoreResult<Option<Snowflake>> {
        let key = token_hash.as_bytes().to_vec();
        self.blocking(move |inner| {
            let Some(stored) = inner.get_json::<StoredRefresh>(Ks::Refresh, &key)? else {
                return Ok(None);
            };
            let family = stored.record.family_id;
            if stored.spent || inner.get(Ks::RevokedFamilies, &id(family))?.is_some() {
                return Ok(None);
            }
            Ok(Some(family))
        })
        .await
    }

    async fn refresh_family_revoked(&self, family_id: Snowflake) -> StoreResult<bool> {
        self.blocking(move |inner| Ok(inner.get(Ks::RevokedFamilies, &id(family_id))?.is_some()))
            .await
    }

    async fn revoke_user_refresh_families(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<Snowflake>> {
        self.write(move |inner| {
            // Under the rotation lock, so no rotation spends a token of a family half-revoked.
            let _guard = lock(&inner.refresh_lock);
            let mut tx = Tx::new(inner);
            let mut revoked = Vec::new();
            for key in tx.keys_with_prefix(Ks::UserFamilies, &id(user_id))? {
                let family = read_id(&key, 8)?;
                if !tx.exists(Ks::RevokedFamilies, &id(family))? {
                    tx.put(Ks::RevokedFamilies, id(family), Vec::new());
                    revoked.push(family);
                }
            }
            Ok((revoked, tx.commit()?))
        })
        .await
    }

    async fn put_relationship(&self, relationship: &RelationshipRecord) -> StoreResult<()> {
        let r = relationship.clone();
        self.write(move |inner| {
            let mut tx = Tx::new(inner);
            tx.put_json(
                Ks::Relationships,
                concat(&[&id(r.user_id), &id(r.target_id)]),
                &r,
            )?;
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn delete_relationship(
        &self,
        user_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<bool> {
        self.write(move |inner| {
            let key = concat(&[&id(user_id), &id(target_id)]);
            let mut tx = Tx::new(inner);
            let existed = tx.exists(Ks::Relationships, &key)?;
            tx.del(Ks::Relationships, key);
            Ok((existed, tx.commit()?))
        })
        .await
    }

    async fn relationships(&self, user_id: Snowflake) -> StoreResult<Vec<RelationshipRecord>> {
        self.blocking(move |inner| {
            inner
                .ks(Ks::Relationships)
                .prefix(id(user_id))
                .map(|entry| decode(&entry.value()?))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl ApplicationStore for EmbeddedStore {
    async fn create_application(&self, app: &ApplicationRecord, bot: &User) -> StoreResult<()> {
        let (app, bot) = (app.clone(), bot.clone());
        self.write(move |inner| {
            let _guard = lock(&inner.names_lock);
            let mut tx = Tx::new(inner);
            put_user(&mut tx, &bot, None)?;
            tx.put_json(Ks::Apps, id(app.id), &app)?;
            tx.put(Ks::AppByBot, id(app.bot_user_id), id(app.id));
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn update_application(&self, app: &ApplicationRecord) -> StoreResult<bool> {
        let app = app.clone();
        self.write(move |inner| {
            let mut tx = Tx::new(inner);
            let Some(old) = tx.get_json::<ApplicationRecord>(Ks::Apps, &id(app.id))? else {
                return Ok((false, tx.commit()?));
            };
            let updated = ApplicationRecord {
                description: app.description,
                flags: app.flags,
                ..old
            };
            tx.put_json(Ks::Apps, id(app.id), &updated)?;
            Ok((true, tx.commit()?))
        })
        .await
    }

    async fn get_application(&self, app_id: Snowflake) -> StoreResult<Option<ApplicationRecord>> {
        self.blocking(move |inner| inner.get_json(Ks::Apps, &id(app_id)))
            .await
    }

    async fn application_by_bot(
        &self,
        bot_user_id: Snowflake,
    ) -> StoreResult<Option<ApplicationRecord>> {
        self.blocking(move |inner| {
            let Some(app_id) = inner.get(Ks::AppByBot, &id(bot_user_id))? else {
                return Ok(None);
            };
            inner.get_json(Ks::Apps, &app_id)
        })
        .await
    }

    async fn set_bot_token(&self, bot_user_id: Snowflake, token_hash: &str) -> StoreResult<()> {
        let hash = token_hash.as_bytes().to_vec();
        self.write(move |inner| {
            let _guard = lock(&inner.names_lock);
            let mut tx = Tx::new(inner);
            if let Some(old) = tx.get(Ks::BotTokenOf, &id(bot_user_id))? {
                tx.del(Ks::BotTokens, old);
            }
            tx.put(Ks::BotTokens, hash.clone(), id(bot_user_id));
            tx.put(Ks::BotTokenOf, id(bot_user_id), hash);
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn bot_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Snowflake>> {
        let key = token_hash.as_bytes().to_vec();
        self.blocking(move |inner| {
            inner
                .get(Ks::BotTokens, &key)?
                .map(|v| read_id(&v, 0))
                .transpose()
        })
        .await
    }
}
