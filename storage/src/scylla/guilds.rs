//! Guild metadata: one table per kind of row, each partitioned by guild, plus the indexes the
//! API reads from the other side (`channel_guild`, `user_guilds`, `invites`).
//!
//! Private channels are units of their own: a `private_channels` row, the channel mapped to
//! itself in `channel_guild`, and the users' `user_private_channels` rows, written in the
//! unit's batch like a guild's rows.
//!
//! # Claims
//!
//! Invite codes and DM pairs are unique across units, which a logged batch cannot check, so
//! they are claimed by lightweight transaction before the batch is sent; a claim another unit
//! holds fails the call with `Conflict` before anything is written, and the claims this call
//! made are released. A claim by the holder itself (a re-put of the same invite or DM)
//! succeeds as it is. A DM pair's row is written only by lightweight transactions, never in
//! the batch, since ScyllaDB orders the two kinds of writes of one row by different clocks.
//!
//! A batch can fail, or its writer die, after its claims were made. An invite code left so is
//! held by its own guild, which may claim it again. A DM pair left so would name a channel
//! that was never written, and no other channel could ever be the pair's DM: so a pair whose
//! channel has no row is free again once its claim is [`DM_CLAIM_GRACE_MS`] old. The grace
//! keeps a claim whose batch is still on its way (or, timed out, still to be replayed from the
//! batchlog) from being taken over, which would leave two DMs for one pair. `dm_channel`
//! likewise answers only with a channel that exists.

use std::collections::HashMap;

use async_trait::async_trait;
use enrichment_protocol::models::AuditLogEntry;
use enrichment_protocol::rest::AuditLogFilter;
use enrichment_protocol::{Snowflake, Timestamp};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;

use super::{ScyllaStore, applied, be, big, from_json, json, sf};
use crate::{
    GuildSnapshot, GuildStore, GuildWrite, InviteRecord, PrivateChannelRecord, StoreError,
    StoreResult,
};

/// How old a DM pair's claim must be before a channel without a row loses it: longer than a
/// batch takes, including the driver's request timeout and the batchlog's replay of a batch
/// whose coordinator timed out; short enough that a pair whose writer died is soon usable.
pub(crate) const DM_CLAIM_GRACE_MS: i64 = 120_000;

/// A row a guild batch touches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Guild(i64),
    Role(i64, i64),
    Channel(i64, i64),
    Member(i64, i64),
    Ban(i64, i64),
    Invite(String),
    Audit(i64, i64),
    Webhook(i64, i64),
    Emoji(i64, i64),
    /// A private channel; its value is `(channel_id, record)`.
    Private(i64),
    /// `(user_id, channel_id)`: the channel is open for the user.
    UserPrivate(i64, i64),
    /// `(low_user_id, high_user_id)` of a DM; its value is `(channel_id, "")`. Claimed, never
    /// written by the batch.
    DmPair(i64, i64),
}

/// The final effect of a batch on one row: its new value, or `None` to delete it.
type Effects = Vec<(Key, Option<(i64, String)>)>;

/// Folds writes to one effect per row, in first-touched order. Statements of one batch share
/// a timestamp, so a put and a delete of the same row inside one batch would otherwise be
/// resolved by Scylla's tie rule (delete wins) instead of by their order.
fn fold(guild: i64, writes: Vec<GuildWrite>) -> StoreResult<Effects> {
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut out: Effects = Vec::new();
    let mut set = |key: Key, value: Option<(i64, String)>| match index.get(&key) {
        Some(&i) => out[i].1 = value,
        None => {
            index.insert(key.clone(), out.len());
            out.push((key, value));
        }
    };
    for w in writes {
        match w {
            GuildWrite::PutGuild(mut g) => {
                g.roles.clear();
                set(Key::Guild(big(g.id)), Some((big(g.id), json(&g)?)));
            }
            GuildWrite::DeleteGuild(_) => {
                return Err(StoreError::Backend(
                    "scylla: DeleteGuild is applied in its own segment".into(),
                ));
            }
            GuildWrite::PutRole { guild_id, role } => set(
                Key::Role(big(guild_id), big(role.id)),
                Some((big(guild_id), json(&role)?)),
            ),
            GuildWrite::DeleteRole { guild_id, role_id } => {
                set(Key::Role(big(guild_id), big(role_id)), None)
            }
            GuildWrite::PutChannel(c) => {
                let g = c.guild_id.map_or(guild, big);
                set(Key::Channel(g, big(c.id)), Some((g, json(&c)?)));
            }
            GuildWrite::DeleteChannel {
                guild_id,
                channel_id,
            } => set(Key::Channel(big(guild_id), big(channel_id)), None),
            GuildWrite::PutMember(m) => set(
                Key::Member(big(m.guild_id), big(m.user_id)),
                Some((big(m.guild_id), json(&m)?)),
            ),
            GuildWrite::DeleteMember { guild_id, user_id } => {
                set(Key::Member(big(guild_id), big(user_id)), None)
            }
            GuildWrite::PutBan(b) => set(
                Key::Ban(big(b.guild_id), big(b.user_id)),
                Some((big(b.guild_id), json(&b)?)),
            ),
            GuildWrite::DeleteBan { guild_id, user_id } => {
                set(Key::Ban(big(guild_id), big(user_id)), None)
            }
            GuildWrite::PutInvite(i) => set(
                Key::Invite(i.code.clone()),
                Some((big(i.guild_id), json(&i)?)),
            ),
            GuildWrite::DeleteInvite { code } => set(Key::Invite(code), None),
            GuildWrite::PutWebhook(w) => set(
                Key::Webhook(big(w.guild_id), big(w.id)),
                Some((big(w.guild_id), json(&w)?)),
            ),
            GuildWrite::DeleteWebhook {
                guild_id,
                webhook_id,
            } => set(Key::Webhook(big(guild_id), big(webhook_id)), None),
            GuildWrite::PutEmoji(e) => set(
                Key::Emoji(big(e.guild_id), big(e.id)),
                Some((big(e.guild_id), json(&e)?)),
            ),
            GuildWrite::DeleteEmoji { guild_id, emoji_id } => {
                set(Key::Emoji(big(guild_id), big(emoji_id)), None)
            }
            GuildWrite::PutPrivateChannel(c) => {
                if let Some((low, high)) = c.dm_pair() {
                    set(
                        Key::DmPair(big(low), big(high)),
                        Some((big(c.id), String::new())),
                    );
                }
                set(Key::Private(big(c.id)), Some((big(c.id), json(&c)?)));
            }
            GuildWrite::OpenPrivateChannel {
                channel_id,
                user_id,
            } => set(
                Key::UserPrivate(big(user_id), big(channel_id)),
                Some((big(channel_id), String::new())),
            ),
            GuildWrite::ClosePrivateChannel {
                channel_id,
                user_id,
            } => set(Key::UserPrivate(big(user_id), big(channel_id)), None),
            GuildWrite::PutAuditEntry { guild_id, entry } => set(
                Key::Audit(big(guild_id), big(entry.id)),
                Some((big(guild_id), json(&entry)?)),
            ),
        }
    }
    Ok(out)
}

/// Splits a batch at each `DeleteGuild`: a guild deletion removes whole partitions, which
/// must happen before (and so in another batch than) any write that follows it.
enum Segment {
    Writes(Vec<GuildWrite>),
    Folded(Effects),
    DeleteGuild(Snowflake),
}

fn segments(writes: Vec<GuildWrite>) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for w in writes {
        if let GuildWrite::DeleteGuild(g) = w {
            if !current.is_empty() {
                out.push(Segment::Writes(std::mem::take(&mut current)));
            }
            out.push(Segment::DeleteGuild(g));
        } else {
            current.push(w);
        }
    }
    if !current.is_empty() {
        out.push(Segment::Writes(current));
    }
    out
}

/// What one call claimed, to release when a later claim conflicts.
#[derive(Default)]
struct Claimed {
    /// `(code, guild_id)`.
    codes: Vec<(String, i64)>,
    /// `(low_user_id, high_user_id, channel_id)`.
    pairs: Vec<(i64, i64, i64)>,
}

fn v(x: i64) -> CqlValue {
    CqlValue::BigInt(x)
}

fn t(s: &str) -> CqlValue {
    CqlValue::Text(s.to_owned())
}

impl ScyllaStore {
    /// Claims the codes of new invites and the pairs of new DMs, recording in `claimed` what
    /// this call claimed; fails with `Conflict` on one that another unit holds.
    async fn claim_unique(&self, effects: &Effects, claimed: &mut Claimed) -> StoreResult<()> {
        for (key, value) in effects {
            if let (Key::Invite(code), Some((g, data))) = (key, value)
                && self.claim_invite(code, *g, data).await?
            {
                claimed.codes.push((code.clone(), *g));
            }
            if let (Key::DmPair(low, high), Some((channel, _))) = (key, value)
                && self.claim_dm_pair(*low, *high, *channel).await?
            {
                claimed.pairs.push((*low, *high, *channel));
            }
        }
        Ok(())
    }

    /// Whether the code was newly claimed for `guild`; `Ok(false)` when the guild held it.
    async fn claim_invite(&self, code: &str, guild: i64, data: &str) -> StoreResult<bool> {
        let st = self.st()?;
        if applied(self.exec(&st.claim_invite, (code, guild, data)).await?)? {
            return Ok(true);
        }
        let holder = self
            .one::<(i64, String)>(&st.get_invite, (code,))
            .await?
            .map(|(g, _)| g);
        if holder.is_some_and(|h| h != guild) {
            return Err(StoreError::Conflict("code"));
        }
        Ok(false)
    }

    /// Whether the pair was newly claimed for `channel`; `Ok(false)` when the channel held it.
    /// A claim naming a channel without a row is taken over once [`DM_CLAIM_GRACE_MS`] old.
    async fn claim_dm_pair(&self, low: i64, high: i64, channel: i64) -> StoreResult<bool> {
        let st = self.st()?;
        // Each round either settles or saw the pair change hands (released, or taken over by
        // a racing claim) since its last look; a pair that keeps changing is contended.
        for _ in 0..3 {
            let now = Timestamp::now().unix_ms();
            if applied(
                self.exec(&st.claim_dm_pair, (low, high, channel, now))
                    .await?,
            )? {
                return Ok(true);
            }
            let Some((holder, claimed_at)) = self
                .one::<(i64, Option<i64>)>(&st.get_dm_pair, (low, high))
                .await?
            else {
                continue;
            };
            if holder == channel {
                return Ok(false);
            }
            let settling = claimed_at.is_none_or(|at| now.saturating_sub(at) < DM_CLAIM_GRACE_MS);
            if settling || self.private_exists(holder).await? {
                return Err(StoreError::Conflict("recipients"));
            }
            if applied(
                self.exec(&st.take_dm_pair, (channel, now, low, high, holder))
                    .await?,
            )? {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict("recipients"))
    }

    /// Releases what [`ScyllaStore::claim_unique`] claimed, where the claimer still holds it.
    async fn release_claims(&self, claimed: Claimed) -> StoreResult<()> {
        let st = self.st()?;
        for (code, guild) in claimed.codes {
            self.exec(&st.release_invite, (code, guild)).await?;
        }
        for (low, high, channel) in claimed.pairs {
            self.exec(&st.release_dm_pair, (low, high, channel)).await?;
        }
        Ok(())
    }

    async fn private_exists(&self, channel: i64) -> StoreResult<bool> {
        let st = self.st()?;
        Ok(self
            .one::<(String,)>(&st.get_private, (channel,))
            .await?
            .is_some())
    }

    async fn apply_effects(&self, guild: i64, effects: Effects) -> StoreResult<()> {
        let st = self.st()?;
        let mut batch = Batch::new(BatchType::Logged);
        let mut values: Vec<Vec<CqlValue>> = Vec::new();
        let mut add = |s: &PreparedStatement, vals: Vec<CqlValue>| {
            batch.append_statement(s.clone());
            values.push(vals);
        };
        for (key, value) in effects {
            match (key, value) {
                (Key::Guild(g), Some((_, d))) => add(&st.put_guild, vec![v(g), t(&d)]),
                (Key::Guild(g), None) => add(&st.del_guild, vec![v(g)]),
                (Key::Role(g, r), Some((_, d))) => add(&st.put_role, vec![v(g), v(r), t(&d)]),
                (Key::Role(g, r), None) => add(&st.del_role, vec![v(g), v(r)]),
                (Key::Channel(g, c), Some((_, d))) => {
                    add(&st.put_channel, vec![v(g), v(c), t(&d)]);
                    add(&st.put_channel_guild, vec![v(c), v(g)]);
                }
                (Key::Channel(g, c), None) => {
                    add(&st.del_channel, vec![v(g), v(c)]);
                    add(&st.del_channel_guild, vec![v(c)]);
                }
                (Key::Member(g, u), Some((_, d))) => {
                    add(&st.put_member, vec![v(g), v(u), t(&d)]);
                    add(&st.put_user_guild, vec![v(u), v(g)]);
                }
                (Key::Member(g, u), None) => {
                    add(&st.del_member, vec![v(g), v(u)]);
                    add(&st.del_user_guild, vec![v(u), v(g)]);
                }
                (Key::Ban(g, u), Some((_, d))) => add(&st.put_ban, vec![v(g), v(u), t(&d)]),
                (Key::Ban(g, u), None) => add(&st.del_ban, vec![v(g), v(u)]),
                (Key::Invite(code), Some((g, d))) => {
                    add(&st.put_guild_invite, vec![v(g), t(&code), t(&d)]);
                    add(&st.put_invite, vec![t(&code), v(g), t(&d)]);
                }
                (Key::Invite(code), None) => {
                    add(&st.del_guild_invite, vec![v(guild), t(&code)]);
                    add(&st.del_invite, vec![t(&code)]);
                }
                (Key::Audit(g, e), Some((_, d))) => add(&st.put_audit, vec![v(g), v(e), t(&d)]),
                // Entries are only ever appended; nothing folds to a deletion of one.
                (Key::Audit(..), None) => {}
                (Key::Webhook(g, w), Some((_, d))) => {
                    add(&st.put_webhook, vec![v(g), v(w), t(&d)]);
                    add(&st.put_webhook_guild, vec![v(w), v(g)]);
                }
                (Key::Webhook(g, w), None) => {
                    add(&st.del_webhook, vec![v(g), v(w)]);
                    add(&st.del_webhook_guild, vec![v(w)]);
                }
                (Key::Emoji(g, e), Some((_, d))) => {
                    add(&st.put_guild_emoji, vec![v(g), v(e), t(&d)])
                }
                (Key::Emoji(g, e), None) => add(&st.del_guild_emoji, vec![v(g), v(e)]),
                (Key::Private(c), Some((_, d))) => {
                    add(&st.put_private, vec![v(c), t(&d)]);
                    add(&st.put_channel_guild, vec![v(c), v(c)]);
                }
                // Nothing deletes a private channel.
                (Key::Private(_), None) => {}
                (Key::UserPrivate(u, c), Some(_)) => add(&st.put_user_private, vec![v(u), v(c)]),
                (Key::UserPrivate(u, c), None) => add(&st.del_user_private, vec![v(u), v(c)]),
                // Claimed before the batch (see the module's doc).
                (Key::DmPair(..), _) => {}
            }
        }
        if values.is_empty() {
            return Ok(());
        }
        self.session().batch(&batch, values).await.map_err(be)?;
        Ok(())
    }

    /// Removes a guild's partitions, then the index rows that point into it.
    async fn delete_guild(&self, guild_id: Snowflake) -> StoreResult<()> {
        let st = self.st()?;
        let g = big(guild_id);
        let snapshot = self.load_guild(guild_id).await?.unwrap_or_default();
        let mut batch = Batch::new(BatchType::Logged);
        for s in [
            &st.del_guild,
            &st.del_roles,
            &st.del_channels,
            &st.del_members,
            &st.del_bans,
            &st.del_guild_invites,
            &st.del_audit,
            &st.del_webhooks,
            &st.del_guild_emojis,
        ] {
            batch.append_statement(s.clone());
        }
        self.session()
            .batch(&batch, vec![(g,); 9])
            .await
            .map_err(be)?;
        // A large guild has many index rows: they go out concurrently, not in one batch.
        let mut index: Vec<(PreparedStatement, Vec<CqlValue>)> = Vec::new();
        for c in &snapshot.channels {
            index.push((st.del_channel_guild.clone(), vec![v(big(c.id))]));
        }
        for m in &snapshot.members {
            index.push((st.del_user_guild.clone(), vec![v(big(m.user_id)), v(g)]));
        }
        for i in &snapshot.invites {
            index.push((st.del_invite.clone(), vec![t(&i.code)]));
        }
        for w in &snapshot.webhooks {
            index.push((st.del_webhook_guild.clone(), vec![v(big(w.id))]));
        }
        for chunk in index.chunks(64) {
            futures::future::try_join_all(chunk.iter().map(|(s, vals)| self.exec(s, vals))).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl GuildStore for ScyllaStore {
    async fn write_guild(&self, guild_id: Snowflake, writes: Vec<GuildWrite>) -> StoreResult<()> {
        let g = big(guild_id);
        let mut steps = Vec::new();
        for segment in segments(writes) {
            steps.push(match segment {
                Segment::Writes(w) => Segment::Folded(fold(g, w)?),
                other => other,
            });
        }
        // Invite codes and DM pairs are claimed before anything is written, so a conflict
        // leaves nothing.
        let mut claimed = Claimed::default();
        for step in &steps {
            if let Segment::Folded(effects) = step
                && let Err(e) = self.claim_unique(effects, &mut claimed).await
            {
                self.release_claims(claimed).await?;
                return Err(e);
            }
        }
        for step in steps {
            match step {
                Segment::Folded(effects) => self.apply_effects(g, effects).await?,
                Segment::DeleteGuild(id) => self.delete_guild(id).await?,
                Segment::Writes(_) => {}
            }
        }
        Ok(())
    }

    async fn load_guild(&self, guild_id: Snowflake) -> StoreResult<Option<GuildSnapshot>> {
        let st = self.st()?;
        let g = big(guild_id);
        let Some((data,)) = self.one::<(String,)>(&st.get_guild, (g,)).await? else {
            let private = self.one::<(String,)>(&st.get_private, (g,)).await?;
            return private
                .map(|(data,)| {
                    Ok(GuildSnapshot {
                        private: Some(from_json::<PrivateChannelRecord>(&data)?),
                        ..GuildSnapshot::default()
                    })
                })
                .transpose();
        };
        let rows = |s| self.all::<(String,)>(s, (g,));
        fn parse<T: serde::de::DeserializeOwned>(rows: Vec<(String,)>) -> StoreResult<Vec<T>> {
            rows.iter().map(|(d,)| from_json(d)).collect()
        }
        let (roles, channels, members, bans, invites, webhooks, emojis) = futures::try_join!(
            rows(&st.list_roles),
            rows(&st.list_channels),
            rows(&st.list_members),
            rows(&st.list_bans),
            rows(&st.list_guild_invites),
            rows(&st.list_webhooks),
            rows(&st.list_guild_emojis),
        )?;
        Ok(Some(GuildSnapshot {
            guild: Some(from_json(&data)?),
            roles: parse(roles)?,
            channels: parse(channels)?,
            members: parse(members)?,
            bans: parse(bans)?,
            invites: parse(invites)?,
            webhooks: parse(webhooks)?,
            emojis: parse(emojis)?,
            private: None,
        }))
    }

    async fn user_guilds(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        let st = self.st()?;
        Ok(self
            .all::<(i64,)>(&st.list_user_guilds, (big(user_id),))
            .await?
            .into_iter()
            .map(|(g,)| sf(g))
            .collect())
    }

    async fn channel_guild(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        let st = self.st()?;
        Ok(self
            .one::<(i64,)>(&st.get_channel_guild, (big(channel_id),))
            .await?
            .map(|(g,)| sf(g)))
    }

    async fn user_private_channels(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        let st = self.st()?;
        Ok(self
            .all::<(i64,)>(&st.list_user_private, (big(user_id),))
            .await?
            .into_iter()
            .map(|(c,)| sf(c))
            .collect())
    }

    /// Only a channel that exists: a pair's claim may outlive a batch that failed (see the
    /// module's doc).
    async fn dm_channel(&self, a: Snowflake, b: Snowflake) -> StoreResult<Option<Snowflake>> {
        let st = self.st()?;
        let pair = (big(a.min(b)), big(a.max(b)));
        let Some((channel, _)) = self
            .one::<(i64, Option<i64>)>(&st.get_dm_pair, pair)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.private_exists(channel).await?.then(|| sf(channel)))
    }

    async fn webhook_guild(&self, webhook_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        let st = self.st()?;
        Ok(self
            .one::<(i64,)>(&st.get_webhook_guild, (big(webhook_id),))
            .await?
            .map(|(g,)| sf(g)))
    }

    /// Pages through the id range from the end the filter pages from, matching as rows come
    /// in, and stops at `limit` matches.
    async fn audit_log(
        &self,
        guild_id: Snowflake,
        filter: &AuditLogFilter,
    ) -> StoreResult<Vec<AuditLogEntry>> {
        use futures::TryStreamExt;
        let st = self.st()?;
        // Exclusive cursors as inclusive bounds on the stored `i64`.
        let low = filter.after.map_or(0, |a| big(a).saturating_add(1));
        let high = filter.before.map_or(i64::MAX, |b| big(b).saturating_sub(1));
        if filter.limit == 0 || low > high {
            return Ok(Vec::new());
        }
        let statement = if filter.after.is_some() {
            &st.list_audit_asc
        } else {
            &st.list_audit_desc
        };
        let mut rows = self
            .session()
            .execute_iter(statement.clone(), (big(guild_id), low, high))
            .await
            .map_err(be)?
            .rows_stream::<(String,)>()
            .map_err(be)?;
        let mut out = Vec::new();
        while let Some((data,)) = rows.try_next().await.map_err(be)? {
            let entry: AuditLogEntry = from_json(&data)?;
            if filter.matches(entry.user_id, entry.action_type) {
                out.push(entry);
                if out.len() == filter.limit {
                    break;
                }
            }
        }
        if filter.after.is_some() {
            out.reverse();
        }
        Ok(out)
    }

    async fn get_invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        let st = self.st()?;
        self.one::<(i64, String)>(&st.get_invite, (code,))
            .await?
            .map(|(_, d)| from_json(&d))
            .transpose()
    }
}
