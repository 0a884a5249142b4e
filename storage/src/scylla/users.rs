//! Users, credentials, refresh tokens, relationships, applications, bot tokens and JWT signing
//! keys.

use async_trait::async_trait;
use enrichment_protocol::models::User;
use enrichment_protocol::{Snowflake, Timestamp};
use futures::{StreamExt, TryStreamExt};

use super::{READ_CONCURRENCY, ScyllaStore, applied, big, from_json, json, sf};
use crate::{
    ApplicationRecord, ApplicationStore, Credentials, KeyStore, RefreshTokenRecord,
    RelationshipRecord, RotateOutcome, SigningKeyRecord, StoreError, StoreResult, UserStore,
};

/// The partition of `signing_keys` holding the JWT keys.
const KEY_SCOPE: &str = "jwt";

/// Which uniqueness table a login lives in.
#[derive(Clone, Copy)]
enum Login {
    Username,
    Email,
}

impl ScyllaStore {
    /// Claims a login for `user_id` with a lightweight transaction. Claiming one the user
    /// already holds succeeds.
    async fn claim(&self, kind: Login, value: &str, user_id: Snowflake) -> StoreResult<()> {
        let st = self.st()?;
        let login = value.to_lowercase();
        let (claim, get, field) = match kind {
            Login::Username => (&st.claim_username, &st.get_username, "username"),
            Login::Email => (&st.claim_email, &st.get_email, "email"),
        };
        if applied(self.exec(claim, (&login, big(user_id))).await?)? {
            return Ok(());
        }
        match self.one::<(i64,)>(get, (&login,)).await? {
            Some((holder,)) if holder != big(user_id) => Err(StoreError::Conflict(field)),
            _ => Ok(()),
        }
    }

    /// Releases a login if `user_id` still holds it.
    async fn release(&self, kind: Login, value: &str, user_id: Snowflake) -> StoreResult<()> {
        let st = self.st()?;
        let release = match kind {
            Login::Username => &st.release_username,
            Login::Email => &st.release_email,
        };
        self.exec(release, (value.to_lowercase(), big(user_id)))
            .await?;
        Ok(())
    }

    /// Claims the user's names, then writes the user; on a conflict, what this call claimed
    /// is released again.
    async fn put_user(&self, user: &User, old: Option<&User>) -> StoreResult<()> {
        let lower = |s: &str| s.to_lowercase();
        let new_name = old.is_none_or(|o| lower(&o.username) != lower(&user.username));
        let new_email = match (&user.email, old.and_then(|o| o.email.as_ref())) {
            (Some(e), Some(o)) => lower(e) != lower(o),
            (Some(_), None) => true,
            _ => false,
        };
        if new_name {
            self.claim(Login::Username, &user.username, user.id).await?;
        }
        if new_email
            && let Some(email) = &user.email
            && let Err(e) = self.claim(Login::Email, email, user.id).await
        {
            if new_name {
                self.release(Login::Username, &user.username, user.id)
                    .await?;
            }
            return Err(e);
        }
        let st = self.st()?;
        self.exec(&st.put_user, (big(user.id), json(user)?)).await?;
        if let Some(old) = old {
            if new_name {
                self.release(Login::Username, &old.username, old.id).await?;
            }
            if let Some(email) = &old.email
                && user.email.as_ref().map(|e| lower(e)) != Some(lower(email))
            {
                self.release(Login::Email, email, old.id).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl UserStore for ScyllaStore {
    async fn create_user(&self, user: &User, credentials: &Credentials) -> StoreResult<()> {
        self.put_user(user, None).await?;
        self.put_credentials(credentials).await
    }

    async fn get_user(&self, id: Snowflake) -> StoreResult<Option<User>> {
        let st = self.st()?;
        self.one::<(String,)>(&st.get_user, (big(id),))
            .await?
            .map(|(d,)| from_json(&d))
            .transpose()
    }

    /// Concurrent partition reads, `READ_CONCURRENCY` at a time.
    async fn get_users(&self, ids: &[Snowflake]) -> StoreResult<Vec<User>> {
        let found: Vec<Option<User>> = futures::stream::iter(ids.iter().copied())
            .map(|id| self.get_user(id))
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<Snowflake>> {
        let st = self.st()?;
        let login = login.to_lowercase();
        for get in [&st.get_email, &st.get_username] {
            if let Some((id,)) = self.one::<(i64,)>(get, (&login,)).await? {
                return Ok(Some(sf(id)));
            }
        }
        Ok(None)
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let old = self.get_user(user.id).await?;
        self.put_user(user, old.as_ref()).await
    }

    async fn get_credentials(&self, user_id: Snowflake) -> StoreResult<Option<Credentials>> {
        let st = self.st()?;
        self.one::<(String,)>(&st.get_credentials, (big(user_id),))
            .await?
            .map(|(d,)| from_json(&d))
            .transpose()
    }

    async fn put_credentials(&self, credentials: &Credentials) -> StoreResult<()> {
        let st = self.st()?;
        self.exec(
            &st.put_credentials,
            (big(credentials.user_id), json(credentials)?),
        )
        .await?;
        Ok(())
    }

    async fn insert_refresh_token(&self, t: &RefreshTokenRecord) -> StoreResult<()> {
        let st = self.st()?;
        // The family's index row first: a token is never live without it, so a password
        // change that lists the user's families cannot miss this one.
        self.exec(&st.put_user_family, (big(t.user_id), big(t.family_id)))
            .await?;
        self.exec(
            &st.put_refresh,
            (
                &t.token_hash,
                big(t.family_id),
                big(t.user_id),
                t.expires_at.unix_ms(),
                false,
            ),
        )
        .await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshTokenRecord,
        now: Timestamp,
    ) -> StoreResult<RotateOutcome> {
        let st = self.st()?;
        let Some((family, user, expires_at, spent)) = self
            .one::<(i64, i64, i64, Option<bool>)>(&st.get_refresh, (old_hash,))
            .await?
        else {
            return Ok(RotateOutcome::Invalid);
        };
        let revoked = self
            .one::<(i64,)>(&st.get_revoked, (family,))
            .await?
            .is_some();
        if revoked || now.unix_ms() >= expires_at {
            return Ok(RotateOutcome::Invalid);
        }
        let reused = || async {
            self.exec(&st.revoke_family, (family,)).await?;
            Ok::<_, StoreError>(RotateOutcome::Reused {
                family_id: sf(family),
            })
        };
        // Spending is a compare-and-set: of two concurrent rotations of one token, exactly one
        // wins and the other counts as reuse.
        if spent == Some(true)
            || !applied(
                self.exec(&st.spend_refresh, (true, old_hash, false))
                    .await?,
            )?
        {
            return reused().await;
        }
        self.insert_refresh_token(&RefreshTokenRecord {
            family_id: sf(family),
            user_id: sf(user),
            ..new.clone()
        })
        .await?;
        Ok(RotateOutcome::Rotated {
            user_id: sf(user),
            family_id: sf(family),
        })
    }

    async fn revoke_refresh_family(&self, family_id: Snowflake) -> StoreResult<()> {
        let st = self.st()?;
        self.exec(&st.revoke_family, (big(family_id),)).await?;
        Ok(())
    }

    async fn refresh_token_family(&self, token_hash: &str) -> StoreResult<Option<Snowflake>> {
        let st = self.st()?;
        let Some((family, _, _, spent)) = self
            .one::<(i64, i64, i64, Option<bool>)>(&st.get_refresh, (token_hash,))
            .await?
        else {
            return Ok(None);
        };
        if spent == Some(true)
            || self
                .one::<(i64,)>(&st.get_revoked, (family,))
                .await?
                .is_some()
        {
            return Ok(None);
        }
        Ok(Some(sf(family)))
    }

    async fn refresh_family_revoked(&self, family_id: Snowflake) -> StoreResult<bool> {
        let st = self.st()?;
        Ok(self
            .one::<(i64,)>(&st.get_revoked, (big(family_id),))
            .await?
            .is_some())
    }

    async fn revoke_user_refresh_families(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<Snowflake>> {
        let st = self.st()?;
        let families = self
            .all::<(i64,)>(&st.list_user_families, (big(user_id),))
            .await?;
        let mut revoked = Vec::new();
        for (family,) in families {
            if self
                .one::<(i64,)>(&st.get_revoked, (family,))
                .await?
                .is_none()
            {
                self.exec(&st.revoke_family, (family,)).await?;
                revoked.push(sf(family));
            }
        }
        Ok(revoked)
    }

    async fn put_relationship(&self, relationship: &RelationshipRecord) -> StoreResult<()> {
        let st = self.st()?;
        self.exec(
            &st.put_relationship,
            (
                big(relationship.user_id),
                big(relationship.target_id),
                json(relationship)?,
            ),
        )
        .await?;
        Ok(())
    }

    /// Read, then deleted: two deletes racing may both answer `true`.
    async fn delete_relationship(
        &self,
        user_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<bool> {
        let st = self.st()?;
        let key = (big(user_id), big(target_id));
        if self
            .one::<(i64,)>(&st.get_relationship, key)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        self.exec(&st.del_relationship, key).await?;
        Ok(true)
    }

    /// One partition, clustered by target id.
    async fn relationships(&self, user_id: Snowflake) -> StoreResult<Vec<RelationshipRecord>> {
        let st = self.st()?;
        self.all::<(String,)>(&st.list_relationships, (big(user_id),))
            .await?
            .iter()
            .map(|(d,)| from_json(d))
            .collect()
    }
}

#[async_trait]
impl ApplicationStore for ScyllaStore {
    async fn create_application(&self, app: &ApplicationRecord, bot: &User) -> StoreResult<()> {
        self.put_user(bot, None).await?;
        let st = self.st()?;
        self.exec(&st.put_app, (big(app.id), json(app)?)).await?;
        self.exec(&st.put_app_by_bot, (big(app.bot_user_id), big(app.id)))
            .await?;
        Ok(())
    }

    async fn get_application(&self, id: Snowflake) -> StoreResult<Option<ApplicationRecord>> {
        let st = self.st()?;
        self.one::<(String,)>(&st.get_app, (big(id),))
            .await?
            .map(|(d,)| from_json(&d))
            .transpose()
    }

    async fn update_application(&self, app: &ApplicationRecord) -> StoreResult<bool> {
        let Some(old) = self.get_application(app.id).await? else {
            return Ok(false);
        };
        let updated = ApplicationRecord {
            description: app.description.clone(),
            flags: app.flags,
            ..old
        };
        let st = self.st()?;
        self.exec(&st.put_app, (big(app.id), json(&updated)?))
            .await?;
        Ok(true)
    }

    async fn application_by_bot(
        &self,
        bot_user_id: Snowflake,
    ) -> StoreResult<Option<ApplicationRecord>> {
        let st = self.st()?;
        match self
            .one::<(i64,)>(&st.get_app_by_bot, (big(bot_user_id),))
            .await?
        {
            Some((app_id,)) => self.get_application(sf(app_id)).await,
            None => Ok(None),
        }
    }

    async fn set_bot_token(&self, bot_user_id: Snowflake, token_hash: &str) -> StoreResult<()> {
        let st = self.st()?;
        if let Some((old,)) = self
            .one::<(String,)>(&st.get_bot_token_of, (big(bot_user_id),))
            .await?
        {
            self.exec(&st.del_bot_token, (old,)).await?;
        }
        self.exec(&st.put_bot_token, (token_hash, big(bot_user_id)))
            .await?;
        self.exec(&st.put_bot_token_of, (big(bot_user_id), token_hash))
            .await?;
        Ok(())
    }

    async fn bot_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Snowflake>> {
        let st = self.st()?;
        Ok(self
            .one::<(i64,)>(&st.get_bot_token, (token_hash,))
            .await?
            .map(|(id,)| sf(id)))
    }
}

#[async_trait]
impl KeyStore for ScyllaStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let st = self.st()?;
        let mut keys: Vec<SigningKeyRecord> = self
            .all::<(String, String, i64, Option<bool>)>(&st.list_keys, (KEY_SCOPE,))
            .await?
            .into_iter()
            .map(|(kid, private_pem, created_at, retired)| SigningKeyRecord {
                kid,
                private_pem,
                created_at: Timestamp::from_unix_ms(created_at.max(0) as u64),
                retired: retired.unwrap_or(false),
            })
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let st = self.st()?;
        applied(
            self.exec(
                &st.insert_key,
                (
                    KEY_SCOPE,
                    &key.kid,
                    &key.private_pem,
                    key.created_at.unix_ms(),
                    false,
                ),
            )
            .await?,
        )
    }

    async fn retire_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let st = self.st()?;
        applied(self.exec(&st.retire_key, (true, KEY_SCOPE, kid)).await?)
    }

    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let st = self.st()?;
        applied(self.exec(&st.remove_key, (KEY_SCOPE, kid)).await?)
    }
}
