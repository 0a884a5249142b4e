//! Users, credentials, refresh tokens and applications on PostgreSQL.
//!
//! Uniqueness of usernames and emails is the unique indexes' job: a create or update that
//! would take a held name fails inside the database with SQLSTATE 23505, which becomes
//! `Conflict`, so two racing creates can never both pass a check.
//!
//! Refresh token rotation locks the presented token's row (`FOR UPDATE`), so of several
//! concurrent rotations of one token exactly one spends it; the next finds it spent and
//! revokes the family, and the rest find it gone. Revoking a family records it in
//! `revoked_refresh_families` (which later inserts into the family also respect) and deletes
//! its tokens, which are dead from then on.

use std::collections::HashMap;

use async_trait::async_trait;
use enrichment_protocol::models::User;
use enrichment_protocol::{Snowflake, Timestamp};
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::{Db, PostgresStore, col, db_error, snowflake, sql_id, sql_time, timestamp};
use crate::{
    ApplicationRecord, ApplicationStore, BackupCodeRecord, Credentials, RefreshTokenRecord,
    RelationshipRecord, RotateOutcome, StoreError, StoreResult, UserStore,
};

const INSERT_USER: &str = "INSERT INTO users (id, username_key, email_key, record)
     VALUES ($1, $2, $3, $4)";

const UPSERT_USER: &str = "INSERT INTO users (id, username_key, email_key, record)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET username_key = excluded.username_key,
         email_key = excluded.email_key, record = excluded.record";

const PUT_CREDENTIALS: &str = "INSERT INTO credentials
         (user_id, password_hash, totp_secret, totp_last_step, backup_codes)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash,
         totp_secret = excluded.totp_secret, totp_last_step = excluded.totp_last_step,
         backup_codes = excluded.backup_codes";

const PUT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (token_hash) DO UPDATE SET family_id = excluded.family_id,
         user_id = excluded.user_id, expires_at = excluded.expires_at, spent = false";

const APPLICATION_COLUMNS: &str = "id, name, description, owner_id, bot_user_id, verify_key, flags";

/// Writes `user` with `sql` (an insert or an upsert) and its lowercased unique keys.
async fn write_user(db: &Db<'_>, sql: &str, user: &User, context: &'static str) -> StoreResult<()> {
    let username_key = user.username.to_lowercase();
    let email_key = user.email.as_ref().map(|e| e.to_lowercase());
    db.execute(
        sql,
        &[&sql_id(user.id), &username_key, &email_key, &Json(user)],
        context,
    )
    .await?;
    Ok(())
}

async fn put_credentials(db: &Db<'_>, credentials: &Credentials) -> StoreResult<()> {
    db.execute(
        PUT_CREDENTIALS,
        &[
            &sql_id(credentials.user_id),
            &credentials.password_hash,
            &credentials.totp_secret,
            &(credentials.totp_last_step as i64),
            &Json(&credentials.backup_codes),
        ],
        "storing credentials",
    )
    .await?;
    Ok(())
}

async fn revoke_family(db: &Db<'_>, family: Snowflake) -> StoreResult<()> {
    let context = "revoking a refresh family";
    db.execute(
        "INSERT INTO revoked_refresh_families (family_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&sql_id(family)],
        context,
    )
    .await?;
    db.execute(
        "DELETE FROM refresh_tokens WHERE family_id = $1",
        &[&sql_id(family)],
        context,
    )
    .await?;
    Ok(())
}

fn application(row: &Row) -> StoreResult<ApplicationRecord> {
    Ok(ApplicationRecord {
        id: snowflake(col(row, 0)?),
        name: col(row, 1)?,
        description: col(row, 2)?,
        owner_id: snowflake(col(row, 3)?),
        bot_user_id: snowflake(col(row, 4)?),
        verify_key: col(row, 5)?,
        flags: col::<i64>(row, 6)? as u64,
    })
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: &User, credentials: &Credentials) -> StoreResult<()> {
        let context = "creating a user";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        write_user(&db, INSERT_USER, user, context).await?;
        put_credentials(&db, credentials).await?;
        tx.commit().await.map_err(db_error(context))
    }

    async fn get_user(&self, id: Snowflake) -> StoreResult<Option<User>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT record FROM users WHERE id = $1",
                &[&sql_id(id)],
                "reading a user",
            )
            .await?;
        Ok(row
            .map(|r| col::<Json<User>>(&r, 0))
            .transpose()?
            .map(|j| j.0))
    }

    /// One query for all of them (a primary-key lookup per id).
    async fn get_users(&self, ids: &[Snowflake]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<i64> = ids.iter().map(|id| sql_id(*id)).collect();
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                "SELECT id, record FROM users WHERE id = ANY($1)",
                &[&wanted],
                "reading users",
            )
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(col::<i64>(row, 0)?, col::<Json<User>>(row, 1)?.0);
        }
        Ok(wanted
            .iter()
            .filter_map(|id| found.get(id).cloned())
            .collect())
    }

    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<Snowflake>> {
        let key = login.to_lowercase();
        let client = self.client().await?;
        // Emails first, like the embedded store; usernames cannot contain '@', so at most one
        // of the two ever matches anyway.
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT id FROM (
                     SELECT id, 0 AS rank FROM users WHERE email_key = $1
                     UNION ALL
                     SELECT id, 1 AS rank FROM users WHERE username_key = $1
                 ) AS found ORDER BY rank LIMIT 1",
                &[&key],
                "finding a user",
            )
            .await?;
        row.map(|r| col(&r, 0).map(snowflake)).transpose()
    }

    /// Inserts the user if it does not exist, like the embedded store's put.
    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let client = self.client().await?;
        write_user(&Db::Conn(&client), UPSERT_USER, user, "updating a user").await
    }

    async fn get_credentials(&self, user_id: Snowflake) -> StoreResult<Option<Credentials>> {
        let client = self.client().await?;
        let Some(row) = Db::Conn(&client)
            .query_opt(
                "SELECT password_hash, totp_secret, totp_last_step, backup_codes
                 FROM credentials WHERE user_id = $1",
                &[&sql_id(user_id)],
                "reading credentials",
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            user_id,
            password_hash: col(&row, 0)?,
            totp_secret: col(&row, 1)?,
            totp_last_step: col::<i64>(&row, 2)? as u64,
            backup_codes: col::<Json<Vec<BackupCodeRecord>>>(&row, 3)?.0,
        }))
    }

    async fn put_credentials(&self, credentials: &Credentials) -> StoreResult<()> {
        let client = self.client().await?;
        put_credentials(&Db::Conn(&client), credentials).await
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        let client = self.client().await?;
        Db::Conn(&client)
            .execute(
                PUT_REFRESH,
                &[
                    &token.token_hash,
                    &sql_id(token.family_id),
                    &sql_id(token.user_id),
                    &sql_time(token.expires_at),
                ],
                "storing a refresh token",
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
        let context = "rotating a refresh token";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        // Dropping the transaction without committing rolls it back (and releases the lock).
        let Some(row) = db
            .query_opt(
                "SELECT family_id, user_id, expires_at, spent,
                     EXISTS (SELECT 1 FROM revoked_refresh_families r
                             WHERE r.family_id = t.family_id)
                 FROM refresh_tokens t WHERE token_hash = $1 FOR UPDATE OF t",
                &[&old_hash],
                context,
            )
            .await?
        else {
            return Ok(RotateOutcome::Invalid);
        };
        let family = snowflake(col(&row, 0)?);
        let user_id = snowflake(col(&row, 1)?);
        let expires_at = timestamp(col(&row, 2)?);
        let spent: bool = col(&row, 3)?;
        let revoked: bool = col(&row, 4)?;
        if revoked || now >= expires_at {
            return Ok(RotateOutcome::Invalid);
        }
        if spent {
            revoke_family(&db, family).await?;
            tx.commit().await.map_err(db_error(context))?;
            return Ok(RotateOutcome::Reused { family_id: family });
        }
        db.execute(
            "UPDATE refresh_tokens SET spent = true WHERE token_hash = $1",
            &[&old_hash],
            context,
        )
        .await?;
        // The new token inherits the family and user of the one it replaces, whatever the
        // caller put in those fields: that is what makes reuse detection cover the chain.
        db.execute(
            PUT_REFRESH,
            &[
                &new.token_hash,
                &sql_id(family),
                &sql_id(user_id),
                &sql_time(new.expires_at),
            ],
            context,
        )
        .await?;
        tx.commit().await.map_err(db_error(context))?;
        Ok(RotateOutcome::Rotated {
            user_id,
            family_id: family,
        })
    }

    async fn revoke_refresh_family(&self, family_id: Snowflake) -> StoreResult<()> {
        let context = "revoking a refresh family";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        revoke_family(&Db::Tx(&tx), family_id).await?;
        tx.commit().await.map_err(db_error(context))
    }

    /// A token is live when it is stored, not yet rotated and its family is not revoked. Expiry
    /// is not checked: the trait gives no clock, and a logout with an expired token is harmless.
    async fn refresh_token_family(&self, token_hash: &str) -> StoreResult<Option<Snowflake>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT family_id FROM refresh_tokens t
                 WHERE token_hash = $1 AND NOT spent
                   AND NOT EXISTS (SELECT 1 FROM revoked_refresh_families r
                                   WHERE r.family_id = t.family_id)",
                &[&token_hash],
                "reading a refresh token",
            )
            .await?;
        row.map(|r| col(&r, 0).map(snowflake)).transpose()
    }

    async fn refresh_family_revoked(&self, family_id: Snowflake) -> StoreResult<bool> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT 1 FROM revoked_refresh_families WHERE family_id = $1",
                &[&sql_id(family_id)],
                "reading a revoked refresh family",
            )
            .await?;
        Ok(row.is_some())
    }

    /// A live family always has token rows (revoking deletes them), so the user's rows name
    /// every family to revoke; locking them keeps a concurrent rotation from adding one.
    async fn revoke_user_refresh_families(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<Snowflake>> {
        let context = "revoking a user's refresh families";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        let rows = db
            .query(
                "SELECT DISTINCT family_id FROM (
                     SELECT family_id FROM refresh_tokens t WHERE user_id = $1
                         AND NOT EXISTS (SELECT 1 FROM revoked_refresh_families r
                                         WHERE r.family_id = t.family_id)
                     FOR UPDATE OF t
                 ) AS live",
                &[&sql_id(user_id)],
                context,
            )
            .await?;
        let mut families = Vec::with_capacity(rows.len());
        for row in &rows {
            let family = snowflake(col(row, 0)?);
            revoke_family(&db, family).await?;
            families.push(family);
        }
        tx.commit().await.map_err(db_error(context))?;
        Ok(families)
    }

    async fn put_relationship(&self, relationship: &RelationshipRecord) -> StoreResult<()> {
        let client = self.client().await?;
        Db::Conn(&client)
            .execute(
                "INSERT INTO relationships (user_id, target_id, kind, since)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, target_id) DO UPDATE
                 SET kind = excluded.kind, since = excluded.since",
                &[
                    &sql_id(relationship.user_id),
                    &sql_id(relationship.target_id),
                    &i16::from(relationship.kind),
                    &sql_time(relationship.since),
                ],
                "storing a relationship",
            )
            .await?;
        Ok(())
    }

    async fn delete_relationship(
        &self,
        user_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<bool> {
        let client = self.client().await?;
        let deleted = Db::Conn(&client)
            .execute(
                "DELETE FROM relationships WHERE user_id = $1 AND target_id = $2",
                &[&sql_id(user_id), &sql_id(target_id)],
                "deleting a relationship",
            )
            .await?;
        Ok(deleted > 0)
    }

    /// By target id as `u64`, sorted here like a user's guilds.
    async fn relationships(&self, user_id: Snowflake) -> StoreResult<Vec<RelationshipRecord>> {
        let client = self.client().await?;
        let rows = Db::Conn(&client)
            .query(
                "SELECT target_id, kind, since FROM relationships WHERE user_id = $1",
                &[&sql_id(user_id)],
                "listing a user's relationships",
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|row| {
                let kind: i16 = col(row, 1)?;
                Ok(RelationshipRecord {
                    user_id,
                    target_id: snowflake(col(row, 0)?),
                    kind: u8::try_from(kind).map_err(|_| {
                        StoreError::Corrupt(format!("relationship kind {kind} is out of range"))
                    })?,
                    since: timestamp(col(row, 2)?),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|r| r.target_id);
        Ok(out)
    }
}

#[async_trait]
impl ApplicationStore for PostgresStore {
    async fn create_application(&self, app: &ApplicationRecord, bot: &User) -> StoreResult<()> {
        let context = "creating an application";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        write_user(&db, INSERT_USER, bot, context).await?;
        db.execute(
            "INSERT INTO applications
                 (id, name, description, owner_id, bot_user_id, verify_key, flags)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &sql_id(app.id),
                &app.name,
                &app.description,
                &sql_id(app.owner_id),
                &sql_id(app.bot_user_id),
                &app.verify_key,
                &(app.flags as i64),
            ],
            context,
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    async fn get_application(&self, id: Snowflake) -> StoreResult<Option<ApplicationRecord>> {
        let client = self.client().await?;
        Db::Conn(&client)
            .query_opt(
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = $1"),
                &[&sql_id(id)],
                "reading an application",
            )
            .await?
            .map(|row| application(&row))
            .transpose()
    }

    async fn update_application(&self, app: &ApplicationRecord) -> StoreResult<bool> {
        let client = self.client().await?;
        let changed = Db::Conn(&client)
            .execute(
                "UPDATE applications SET description = $2, flags = $3 WHERE id = $1",
                &[&sql_id(app.id), &app.description, &(app.flags as i64)],
                "updating an application",
            )
            .await?;
        Ok(changed > 0)
    }

    async fn application_by_bot(
        &self,
        bot_user_id: Snowflake,
    ) -> StoreResult<Option<ApplicationRecord>> {
        let client = self.client().await?;
        Db::Conn(&client)
            .query_opt(
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE bot_user_id = $1"),
                &[&sql_id(bot_user_id)],
                "reading an application",
            )
            .await?
            .map(|row| application(&row))
            .transpose()
    }

    /// A hash held by another bot moves to this one, as in the embedded store (hashes of random
    /// tokens never collide in practice).
    async fn set_bot_token(&self, bot_user_id: Snowflake, token_hash: &str) -> StoreResult<()> {
        let context = "setting a bot token";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error(context))?;
        let db = Db::Tx(&tx);
        db.execute(
            "DELETE FROM bot_tokens WHERE token_hash = $1 AND bot_user_id <> $2",
            &[&token_hash, &sql_id(bot_user_id)],
            context,
        )
        .await?;
        db.execute(
            "INSERT INTO bot_tokens (bot_user_id, token_hash) VALUES ($1, $2)
             ON CONFLICT (bot_user_id) DO UPDATE SET token_hash = excluded.token_hash",
            &[&sql_id(bot_user_id), &token_hash],
            context,
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    async fn bot_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Snowflake>> {
        let client = self.client().await?;
        let row = Db::Conn(&client)
            .query_opt(
                "SELECT bot_user_id FROM bot_tokens WHERE token_hash = $1",
                &[&token_hash],
                "reading a bot token",
            )
            .await?;
        row.map(|r| col(&r, 0).map(snowflake)).transpose()
    }
}
