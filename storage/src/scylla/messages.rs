//! Messages, reactions and pins, in Discord's layout: history reads walk the channel's
//! non-empty buckets from the anchor outwards until the page is full. Every write of a message
//! row is a lightweight transaction (see the module docs of `scylla` for why).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use enrichment_protocol::rest::HistoryAnchor;
use enrichment_protocol::{Snowflake, Timestamp};
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::{READ_CONCURRENCY, ScyllaStore, applied, be, big, from_json, json, sf};
use crate::{
    MessageRecord, MessageStore, PinnedMessage, ReactionCount, StoreError, StoreResult, bucket_of,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn bucket(id: Snowflake) -> i32 {
    bucket_of(id) as i32
}

/// One page read from one bucket, for the coalescer's key.
#[derive(Clone, Copy)]
enum Read {
    Head = 0,
    Before = 1,
    After = 2,
}

impl ScyllaStore {
    /// Later reads of the channel start afresh instead of joining reads begun before a write.
    fn written(&self, channel: i64) {
        self.inner.message_reads.forget(|(c, _)| *c == channel);
        self.inner.page_reads.forget(|(c, ..)| *c == channel);
    }

    async fn fetch_message(&self, channel: i64, id: Snowflake) -> StoreResult<Option<String>> {
        let st = self.st()?;
        Ok(self
            .one::<(String,)>(&st.get_message, (channel, bucket(id), big(id)))
            .await?
            .map(|(d,)| d))
    }

    /// The message's JSON; concurrent reads of one message share a query.
    async fn message_json(&self, channel: i64, id: Snowflake) -> StoreResult<Option<String>> {
        let me = self.clone();
        self.inner
            .message_reads
            .run((channel, big(id)), move || {
                async move {
                    me.fetch_message(channel, id)
                        .await
                        .map_err(|e| e.to_string())
                }
                .boxed()
            })
            .await
    }

    /// Up to `limit` messages of one bucket, newest first (`After`: oldest first).
    async fn bucket_page(
        &self,
        channel: i64,
        b: i32,
        read: Read,
        x: i64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let me = self.clone();
        let key = (channel, read as u8, (i64::from(b) << 32) ^ x, limit);
        self.inner
            .page_reads
            .run(key, move || {
                async move {
                    let st = me.st().map_err(|e| e.to_string())?;
                    let rows = match read {
                        Read::Head => {
                            me.first::<(String,)>(&st.bucket_head, (channel, b), limit)
                                .await
                        }
                        Read::Before => {
                            me.first::<(String,)>(&st.bucket_before, (channel, b, x), limit)
                                .await
                        }
                        Read::After => {
                            me.first::<(String,)>(&st.bucket_after, (channel, b, x), limit)
                                .await
                        }
                    };
                    rows.map(|r| r.into_iter().map(|(d,)| d).collect())
                        .map_err(|e| e.to_string())
                }
                .boxed()
            })
            .await
    }

    /// The channel's non-empty buckets, newest first.
    async fn buckets(&self, channel: i64) -> StoreResult<Vec<i32>> {
        let st = self.st()?;
        let mut b: Vec<i32> = self
            .all::<(i32,)>(&st.list_buckets, (channel,))
            .await?
            .into_iter()
            .map(|(b,)| b)
            .collect();
        b.sort_unstable_by(|x, y| y.cmp(x));
        Ok(b)
    }

    /// Walks buckets newest to oldest from `anchor`'s bucket, filling up to `limit`.
    async fn older(
        &self,
        channel: i64,
        before: Option<Snowflake>,
        limit: usize,
    ) -> StoreResult<Vec<MessageRecord>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let top = before.map(bucket);
        for b in self.buckets(channel).await? {
            if top.is_some_and(|t| b > t) {
                continue;
            }
            let want = limit - out.len();
            let page = match before {
                Some(x) if Some(b) == top => {
                    self.bucket_page(channel, b, Read::Before, big(x), want)
                        .await?
                }
                _ => self.bucket_page(channel, b, Read::Head, 0, want).await?,
            };
            for d in page {
                out.push(from_json::<MessageRecord>(&d)?);
            }
            if out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Walks buckets oldest to newest from `after`'s bucket; returns newest first.
    async fn newer(
        &self,
        channel: i64,
        after: Snowflake,
        limit: usize,
    ) -> StoreResult<Vec<MessageRecord>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let bottom = bucket(after);
        let mut buckets = self.buckets(channel).await?;
        buckets.reverse();
        for b in buckets.into_iter().filter(|b| *b >= bottom) {
            let want = limit - out.len();
            // Messages above `after` in its own bucket; every message of a later bucket is
            // above it anyway, and id 0 keeps the statement the same.
            let x = if b == bottom { big(after) } else { -1 };
            for d in self.bucket_page(channel, b, Read::After, x, want).await? {
                out.push(from_json::<MessageRecord>(&d)?);
            }
            if out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        out.reverse();
        Ok(out)
    }

    /// The newest message id of a channel: the head of its newest non-empty bucket.
    async fn newest_id(&self, channel: i64) -> StoreResult<Option<Snowflake>> {
        let st = self.st()?;
        for b in self.buckets(channel).await? {
            // The partition is clustered newest first.
            if let Some((id,)) = self
                .first::<(i64,)>(&st.bucket_ids, (channel, b), 1)
                .await?
                .into_iter()
                .next()
            {
                return Ok(Some(sf(id)));
            }
        }
        Ok(None)
    }

    /// Keeps `pin_of`/`pins` in step with the message's `pinned` flag.
    async fn sync_pin(&self, channel: i64, message_id: i64, pinned: bool) -> StoreResult<()> {
        let st = self.st()?;
        let current = self
            .one::<(i64,)>(&st.get_pin_of, (channel, message_id))
            .await?;
        match (pinned, current) {
            (true, None) => {
                let latest = self
                    .one::<(i64,)>(&st.latest_pin, (channel,))
                    .await?
                    .map(|(at,)| at);
                let at = latest.map_or(0, |l| l.saturating_add(1)).max(now_ms());
                self.exec(&st.put_pin, (channel, at, message_id)).await?;
                self.exec(&st.put_pin_of, (channel, message_id, at)).await?;
            }
            (false, Some((at,))) => {
                self.exec(&st.del_pin, (channel, at, message_id)).await?;
                self.exec(&st.del_pin_of, (channel, message_id)).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn delete_reactions_of(&self, channel: i64, message_id: i64) -> StoreResult<()> {
        let st = self.st()?;
        self.exec(&st.del_reactions, (channel, message_id)).await?;
        self.exec(&st.del_emojis, (channel, message_id)).await?;
        Ok(())
    }

    async fn counts(
        &self,
        channel: i64,
        message_id: i64,
        viewer: i64,
    ) -> StoreResult<Vec<ReactionCount>> {
        let st = self.st()?;
        let (reactions, emojis) = futures::try_join!(
            self.all::<(String, i64)>(&st.all_reactions, (channel, message_id)),
            self.all::<(String, i64)>(&st.list_emojis, (channel, message_id)),
        )?;
        let mut tally: HashMap<&str, (u32, bool)> = HashMap::new();
        for (emoji, user) in &reactions {
            let e = tally.entry(emoji.as_str()).or_default();
            e.0 += 1;
            e.1 |= *user == viewer;
        }
        let mut order: Vec<&(String, i64)> = emojis.iter().collect();
        order.sort_by_key(|(_, seq)| *seq);
        Ok(order
            .into_iter()
            .filter_map(|(emoji, _)| {
                tally.get(emoji.as_str()).map(|(count, me)| ReactionCount {
                    emoji: emoji.clone(),
                    count: *count,
                    me: *me,
                })
            })
            .collect())
    }
}

#[async_trait]
impl MessageStore for ScyllaStore {
    async fn create_message(&self, m: &MessageRecord) -> StoreResult<()> {
        let st = self.st()?;
        let channel = big(m.channel_id);
        let b = bucket(m.id);
        let stored = applied(
            self.exec(&st.create_message, (channel, b, big(m.id), json(m)?))
                .await?,
        )?;
        if !stored {
            return Err(StoreError::Conflict("id"));
        }
        self.written(channel);
        let known = self
            .inner
            .known_buckets
            .lock()
            .map_err(|_| be("bucket cache poisoned"))?
            .contains(&(channel, b));
        if !known {
            self.exec(&st.put_bucket, (channel, b)).await?;
            if let Ok(mut k) = self.inner.known_buckets.lock() {
                k.insert((channel, b));
            }
        }
        self.sync_pin(channel, big(m.id), m.pinned).await
    }

    async fn update_message(&self, m: &MessageRecord) -> StoreResult<bool> {
        let st = self.st()?;
        let channel = big(m.channel_id);
        let found = applied(
            self.exec(
                &st.update_message,
                (json(m)?, channel, bucket(m.id), big(m.id)),
            )
            .await?,
        )?;
        if !found {
            return Ok(false);
        }
        self.written(channel);
        self.sync_pin(channel, big(m.id), m.pinned).await?;
        Ok(true)
    }

    async fn get_message(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        self.message_json(big(channel_id), message_id)
            .await?
            .map(|d| from_json(&d))
            .transpose()
    }

    async fn list_messages(
        &self,
        channel_id: Snowflake,
        anchor: HistoryAnchor,
        limit: usize,
    ) -> StoreResult<Vec<MessageRecord>> {
        let channel = big(channel_id);
        if limit == 0 {
            return Ok(Vec::new());
        }
        match anchor {
            HistoryAnchor::Latest => self.older(channel, None, limit).await,
            HistoryAnchor::Before(x) => self.older(channel, Some(x), limit).await,
            HistoryAnchor::After(x) => self.newer(channel, x, limit).await,
            HistoryAnchor::Around(x) => {
                let half = limit / 2;
                let at = self.get_message(channel_id, x).await?;
                let newer_n = if at.is_some() { limit - 1 - half } else { half };
                let mut out = self.newer(channel, x, newer_n).await?;
                out.extend(at);
                out.extend(self.older(channel, Some(x), half).await?);
                Ok(out)
            }
        }
    }

    /// Concurrent reads per channel, `READ_CONCURRENCY` channels at a time.
    async fn last_message_ids(
        &self,
        channel_ids: &[Snowflake],
    ) -> StoreResult<Vec<Option<Snowflake>>> {
        futures::stream::iter(channel_ids.iter().copied())
            .map(|c| self.newest_id(big(c)))
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn delete_messages(
        &self,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>> {
        let st = self.st()?;
        let channel = big(channel_id);
        let mut existed = Vec::new();
        for id in ids {
            let deleted = applied(
                self.exec(&st.del_message, (channel, bucket(*id), big(*id)))
                    .await?,
            )?;
            if deleted && !existed.contains(id) {
                existed.push(*id);
            }
            self.delete_reactions_of(channel, big(*id)).await?;
            self.sync_pin(channel, big(*id), false).await?;
        }
        self.written(channel);
        Ok(existed)
    }

    async fn delete_channel(&self, channel_id: Snowflake) -> StoreResult<()> {
        let st = self.st()?;
        let channel = big(channel_id);
        for b in self.buckets(channel).await? {
            for (id,) in self.all::<(i64,)>(&st.bucket_ids, (channel, b)).await? {
                self.delete_reactions_of(channel, id).await?;
            }
            self.exec(&st.del_bucket, (channel, b)).await?;
        }
        self.exec(&st.del_buckets, (channel,)).await?;
        self.exec(&st.del_pins, (channel,)).await?;
        self.exec(&st.del_pins_of, (channel,)).await?;
        if let Ok(mut k) = self.inner.known_buckets.lock() {
            k.retain(|(c, _)| *c != channel);
        }
        self.written(channel);
        Ok(())
    }

    async fn add_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        let st = self.st()?;
        let (c, m, u) = (big(channel_id), big(message_id), big(user_id));
        if self
            .one::<(i64,)>(&st.get_reaction, (c, m, emoji, u))
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let emojis = self.all::<(String, i64)>(&st.list_emojis, (c, m)).await?;
        if !emojis.iter().any(|(e, _)| e == emoji) {
            let seq = emojis.iter().map(|(_, s)| *s + 1).max().unwrap_or(0);
            self.exec(&st.put_emoji, (c, m, emoji, seq)).await?;
        }
        self.exec(&st.put_reaction, (c, m, emoji, u)).await?;
        Ok(true)
    }

    async fn remove_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        let st = self.st()?;
        let (c, m, u) = (big(channel_id), big(message_id), big(user_id));
        if self
            .one::<(i64,)>(&st.get_reaction, (c, m, emoji, u))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        self.exec(&st.del_reaction, (c, m, emoji, u)).await?;
        if self
            .one::<(i64,)>(&st.any_reaction, (c, m, emoji))
            .await?
            .is_none()
        {
            self.exec(&st.del_emoji, (c, m, emoji)).await?;
        }
        Ok(true)
    }

    async fn remove_reactions(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()> {
        let st = self.st()?;
        let (c, m) = (big(channel_id), big(message_id));
        match emoji {
            None => self.delete_reactions_of(c, m).await,
            Some(e) => {
                self.exec(&st.del_emoji_reactions, (c, m, e)).await?;
                self.exec(&st.del_emoji, (c, m, e)).await?;
                Ok(())
            }
        }
    }

    async fn reaction_users(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        after: Snowflake,
        limit: usize,
    ) -> StoreResult<Vec<Snowflake>> {
        let st = self.st()?;
        if after.get() >= i64::MAX as u64 || limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .first::<(i64,)>(
                &st.reaction_users,
                (big(channel_id), big(message_id), emoji, big(after)),
                limit,
            )
            .await?
            .into_iter()
            .map(|(u,)| sf(u))
            .collect())
    }

    async fn reaction_counts(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        viewer: Snowflake,
    ) -> StoreResult<Vec<ReactionCount>> {
        self.counts(big(channel_id), big(message_id), big(viewer))
            .await
    }

    async fn set_pinned(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool> {
        let channel = big(channel_id);
        let Some(d) = self.fetch_message(channel, message_id).await? else {
            return Ok(false);
        };
        let mut record: MessageRecord = from_json(&d)?;
        self.sync_pin(channel, big(message_id), pinned).await?;
        if record.pinned != pinned {
            record.pinned = pinned;
            let st = self.st()?;
            // Conditional like every write of a message row (see the module docs of `scylla`);
            // a message deleted meanwhile stays deleted.
            let found = applied(
                self.exec(
                    &st.update_message,
                    (json(&record)?, channel, bucket(message_id), big(message_id)),
                )
                .await?,
            )?;
            self.written(channel);
            if !found {
                self.sync_pin(channel, big(message_id), false).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn list_pins(&self, channel_id: Snowflake) -> StoreResult<Vec<PinnedMessage>> {
        let st = self.st()?;
        let channel = big(channel_id);
        let mut pins = self.all::<(i64, i64)>(&st.list_pins, (channel,)).await?;
        pins.sort_by(|a, b| b.cmp(a));
        let mut out = Vec::with_capacity(pins.len());
        for (at, id) in pins {
            if let Some(d) = self.fetch_message(channel, sf(id)).await? {
                out.push(PinnedMessage {
                    pinned_at: Timestamp::from_unix_ms(at.max(0) as u64),
                    message: from_json(&d)?,
                });
            }
        }
        Ok(out)
    }
}
