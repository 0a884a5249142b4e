//! Messages, reactions and pins on fjall.
//!
//! A channel's messages are one contiguous key range (`channel | bucket | id`), so history is a
//! bounded range scan in either direction, crossing bucket boundaries without special cases.
//!
//! Reaction counts are kept next to the reactions rather than counted on read, because every
//! message read shows them. Each emoji gets a per-message sequence number when its first
//! reaction arrives, which is the order [`MessageStore::reaction_counts`] reports; when its last
//! reaction goes, the emoji is forgotten, so adding it again puts it at the end.
//!
//! Pins are ordered by a per-channel pin clock: wall-clock milliseconds, bumped past the latest
//! pin of the channel when needed, so two pins within one millisecond still keep their order.

use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use enrichment_protocol::rest::HistoryAnchor;
use enrichment_protocol::{Snowflake, Timestamp};
use fjall::{Iter, Readable, Snapshot};

use super::keys::{
    self, channel_message, concat, id, message, message_max, pin, read_id, read_u64,
};
use super::{Committed, EmbeddedStore, Inner, Ks, Tx, decode, lock};
use crate::{MessageRecord, MessageStore, PinnedMessage, ReactionCount, StoreError, StoreResult};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `seq | count` of an emoji on a message.
fn read_emoji_meta(value: &[u8]) -> StoreResult<(u64, u32)> {
    let seq = read_u64(value, 0)?;
    let count = value
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("short reaction count".into()))?;
    Ok((seq, count))
}

fn emoji_meta(seq: u64, count: u32) -> Vec<u8> {
    concat(&[&seq.to_be_bytes(), &count.to_be_bytes()])
}

/// Per-emoji counts of one message, read from `snap`, in first-added order.
fn reaction_counts_in(
    inner: &Inner,
    snap: &Snapshot,
    channel_id: Snowflake,
    message_id: Snowflake,
    viewer: Snowflake,
) -> StoreResult<Vec<ReactionCount>> {
    let cm = channel_message(channel_id, message_id);
    let mut out = Vec::new();
    for entry in snap.prefix(inner.ks(Ks::ReactionOrder), &cm) {
        let emoji = String::from_utf8(entry.value()?.to_vec())
            .map_err(|_| StoreError::Corrupt("emoji is not UTF-8".into()))?;
        let emoji_key = concat(&[&cm, &keys::emoji(&emoji)?]);
        let Some(meta) = snap.get(inner.ks(Ks::ReactionEmoji), &emoji_key)? else {
            return Err(StoreError::Corrupt("reaction order without count".into()));
        };
        let (_, count) = read_emoji_meta(&meta)?;
        let me = snap.contains_key(inner.ks(Ks::Reactions), concat(&[&emoji_key, &id(viewer)]))?;
        out.push(ReactionCount { emoji, count, me });
    }
    Ok(out)
}

/// Makes the pin index agree with `pinned`. Callers hold `messages_lock`.
fn sync_pin(
    tx: &mut Tx<'_>,
    channel: Snowflake,
    message_id: Snowflake,
    pinned: bool,
) -> StoreResult<()> {
    let of = channel_message(channel, message_id);
    match (pinned, tx.get(Ks::PinOf, &of)?) {
        (true, None) => {
            let latest = match tx.keys_with_prefix(Ks::Pins, &id(channel))?.last() {
                Some(key) => Some(read_u64(key, 8)?),
                None => None,
            };
            let at = latest.map_or(0, |l| l.saturating_add(1)).max(now_ms());
            tx.put(Ks::Pins, pin(channel, at, message_id), Vec::new());
            tx.put(Ks::PinOf, of, at.to_be_bytes());
        }
        (false, Some(at)) => {
            tx.del(Ks::Pins, pin(channel, read_u64(&at, 0)?, message_id));
            tx.del(Ks::PinOf, of);
        }
        _ => {}
    }
    Ok(())
}

/// Deletes a message with its reactions and pin; `true` if the message existed.
fn delete_message(tx: &mut Tx<'_>, channel: Snowflake, message_id: Snowflake) -> StoreResult<bool> {
    let key = message(channel, message_id);
    let existed = tx.exists(Ks::Messages, &key)?;
    tx.del(Ks::Messages, key);
    // Reactions are cleared even without the message: a reaction racing the delete may have
    // landed after it.
    let cm = channel_message(channel, message_id);
    for ks in [Ks::Reactions, Ks::ReactionEmoji, Ks::ReactionOrder] {
        tx.del_prefix(ks, &cm)?;
    }
    sync_pin(tx, channel, message_id, false)?;
    Ok(existed)
}

fn take_messages(
    iter: impl Iterator<Item = fjall::Guard>,
    limit: usize,
) -> StoreResult<Vec<MessageRecord>> {
    iter.take(limit)
        .map(|entry| decode(&entry.value()?))
        .collect()
}

fn older(snap: &Snapshot, inner: &Inner, channel: Snowflake, x: Snowflake) -> std::iter::Rev<Iter> {
    snap.range(
        inner.ks(Ks::Messages),
        id(channel).to_vec()..message(channel, x),
    )
    .rev()
}

fn newer(snap: &Snapshot, inner: &Inner, channel: Snowflake, x: Snowflake) -> Iter {
    let range = (
        Bound::Excluded(message(channel, x)),
        Bound::Included(message_max(channel)),
    );
    snap.range(inner.ks(Ks::Messages), range)
}

/// Newest first; see [`MessageStore::list_messages`].
///
/// `Around(x)` takes `limit / 2` messages older than x, x itself if it exists, and newer ones up
/// to what is left of `limit` but at most `limit / 2`; a short side is not made up from the
/// other. With limit 1 that is x alone, which clients use to fetch one message.
fn list(
    inner: &Inner,
    channel: Snowflake,
    anchor: HistoryAnchor,
    limit: usize,
) -> StoreResult<Vec<MessageRecord>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let snap = inner.db.snapshot();
    let ks = inner.ks(Ks::Messages);
    match anchor {
        HistoryAnchor::Latest => take_messages(
            snap.range(ks, id(channel).to_vec()..=message_max(channel))
                .rev(),
            limit,
        ),
        HistoryAnchor::Before(x) => take_messages(older(&snap, inner, channel, x), limit),
        HistoryAnchor::After(x) => {
            // The oldest `limit` after x, which is what paging forward needs.
            let mut out = take_messages(newer(&snap, inner, channel, x), limit)?;
            out.reverse();
            Ok(out)
        }
        HistoryAnchor::Around(x) => {
            let half = limit / 2;
            let at: Option<MessageRecord> = snap
                .get(ks, message(channel, x))?
                .map(|v| decode(&v))
                .transpose()?;
            let newer_n = if at.is_some() { limit - 1 - half } else { half };
            let mut out = take_messages(newer(&snap, inner, channel, x), newer_n)?;
            out.reverse();
            out.extend(at);
            out.extend(take_messages(older(&snap, inner, channel, x), half)?);
            Ok(out)
        }
    }
}

#[async_trait]
impl MessageStore for EmbeddedStore {
    /// The existence check and the insert run under `messages_lock` and commit as one batch,
    /// so of two creates of one id exactly one finds the key free.
    async fn create_message(&self, message: &MessageRecord) -> StoreResult<()> {
        let message = message.clone();
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            let key = keys::message(message.channel_id, message.id);
            if tx.exists(Ks::Messages, &key)? {
                return Err(StoreError::Conflict("id"));
            }
            tx.put_json(Ks::Messages, key, &message)?;
            sync_pin(&mut tx, message.channel_id, message.id, message.pinned)?;
            Ok(((), tx.commit()?))
        })
        .await
    }

    /// Also brings the pin index in line with `message.pinned`, so an edit that carries the
    /// pinned flag keeps the message in the pins.
    async fn update_message(&self, message: &MessageRecord) -> StoreResult<bool> {
        let message = message.clone();
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            let key = keys::message(message.channel_id, message.id);
            if !tx.exists(Ks::Messages, &key)? {
                return Ok((false, Committed(false)));
            }
            tx.put_json(Ks::Messages, key, &message)?;
            sync_pin(&mut tx, message.channel_id, message.id, message.pinned)?;
            Ok((true, tx.commit()?))
        })
        .await
    }

    async fn get_message(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        self.blocking(move |inner| inner.get_json(Ks::Messages, &message(channel_id, message_id)))
            .await
    }

    async fn list_messages(
        &self,
        channel_id: Snowflake,
        anchor: HistoryAnchor,
        limit: usize,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.blocking(move |inner| list(inner, channel_id, anchor, limit))
            .await
    }

    /// The last key of each channel's range, read from one snapshot; values are not decoded.
    async fn last_message_ids(
        &self,
        channel_ids: &[Snowflake],
    ) -> StoreResult<Vec<Option<Snowflake>>> {
        let channel_ids = channel_ids.to_vec();
        self.blocking(move |inner| {
            let snap = inner.db.snapshot();
            let ks = inner.ks(Ks::Messages);
            channel_ids
                .into_iter()
                .map(|c| {
                    match snap.range(ks, id(c).to_vec()..=message_max(c)).next_back() {
                        // `channel | bucket | id`: the id is the last 8 bytes.
                        Some(entry) => Ok(Some(read_id(&entry.key()?, 12)?)),
                        None => Ok(None),
                    }
                })
                .collect()
        })
        .await
    }

    async fn delete_messages(
        &self,
        channel_id: Snowflake,
        ids: &[Snowflake],
    ) -> StoreResult<Vec<Snowflake>> {
        let ids = ids.to_vec();
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            let mut existed = Vec::new();
            for message_id in ids {
                if delete_message(&mut tx, channel_id, message_id)? {
                    existed.push(message_id);
                }
            }
            Ok((existed, tx.commit()?))
        })
        .await
    }

    /// One batch holding a tombstone per key of the channel: atomic, and proportional to the
    /// channel's size in memory while it is built.
    async fn delete_channel(&self, channel_id: Snowflake) -> StoreResult<()> {
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            for ks in [
                Ks::Messages,
                Ks::Reactions,
                Ks::ReactionEmoji,
                Ks::ReactionOrder,
                Ks::Pins,
                Ks::PinOf,
            ] {
                tx.del_prefix(ks, &id(channel_id))?;
            }
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn add_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        let emoji_key = keys::emoji(emoji)?;
        let emoji = emoji.to_owned();
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            let cm = channel_message(channel_id, message_id);
            let reaction = concat(&[&cm, &emoji_key, &id(user_id)]);
            if tx.exists(Ks::Reactions, &reaction)? {
                return Ok((false, Committed(false)));
            }
            tx.put(Ks::Reactions, reaction, Vec::new());
            let meta_key = concat(&[&cm, &emoji_key]);
            match tx.get(Ks::ReactionEmoji, &meta_key)? {
                Some(meta) => {
                    let (seq, count) = read_emoji_meta(&meta)?;
                    tx.put(
                        Ks::ReactionEmoji,
                        meta_key,
                        emoji_meta(seq, count.saturating_add(1)),
                    );
                }
                None => {
                    let seq = match tx.keys_with_prefix(Ks::ReactionOrder, &cm)?.last() {
                        Some(key) => read_u64(key, 16)?.saturating_add(1),
                        None => 0,
                    };
                    tx.put(Ks::ReactionEmoji, meta_key, emoji_meta(seq, 1));
                    tx.put(
                        Ks::ReactionOrder,
                        concat(&[&cm, &seq.to_be_bytes()]),
                        emoji.into_bytes(),
                    );
                }
            }
            Ok((true, tx.commit()?))
        })
        .await
    }

    async fn remove_reaction(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        user_id: Snowflake,
    ) -> StoreResult<bool> {
        let emoji_key = keys::emoji(emoji)?;
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            let cm = channel_message(channel_id, message_id);
            let reaction = concat(&[&cm, &emoji_key, &id(user_id)]);
            if !tx.exists(Ks::Reactions, &reaction)? {
                return Ok((false, Committed(false)));
            }
            tx.del(Ks::Reactions, reaction);
            let meta_key = concat(&[&cm, &emoji_key]);
            if let Some(meta) = tx.get(Ks::ReactionEmoji, &meta_key)? {
                let (seq, count) = read_emoji_meta(&meta)?;
                if count <= 1 {
                    tx.del(Ks::ReactionEmoji, meta_key);
                    tx.del(Ks::ReactionOrder, concat(&[&cm, &seq.to_be_bytes()]));
                } else {
                    tx.put(Ks::ReactionEmoji, meta_key, emoji_meta(seq, count - 1));
                }
            }
            Ok((true, tx.commit()?))
        })
        .await
    }

    async fn remove_reactions(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<&str>,
    ) -> StoreResult<()> {
        let emoji_key = emoji.map(keys::emoji).transpose()?;
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            let cm = channel_message(channel_id, message_id);
            match emoji_key {
                None => {
                    for ks in [Ks::Reactions, Ks::ReactionEmoji, Ks::ReactionOrder] {
                        tx.del_prefix(ks, &cm)?;
                    }
                }
                Some(emoji_key) => {
                    let meta_key = concat(&[&cm, &emoji_key]);
                    tx.del_prefix(Ks::Reactions, &meta_key)?;
                    if let Some(meta) = tx.get(Ks::ReactionEmoji, &meta_key)? {
                        let (seq, _) = read_emoji_meta(&meta)?;
                        tx.del(Ks::ReactionOrder, concat(&[&cm, &seq.to_be_bytes()]));
                        tx.del(Ks::ReactionEmoji, meta_key);
                    }
                }
            }
            Ok(((), tx.commit()?))
        })
        .await
    }

    async fn reaction_users(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: &str,
        after: Snowflake,
        limit: usize,
    ) -> StoreResult<Vec<Snowflake>> {
        let emoji_key = keys::emoji(emoji)?;
        let Some(first) = after.get().checked_add(1) else {
            return Ok(Vec::new());
        };
        self.blocking(move |inner| {
            let prefix = concat(&[&channel_message(channel_id, message_id), &emoji_key]);
            let start = concat(&[&prefix, &first.to_be_bytes()]);
            let end = concat(&[&prefix, &u64::MAX.to_be_bytes()]);
            let offset = prefix.len();
            inner
                .ks(Ks::Reactions)
                .range(start..=end)
                .take(limit)
                .map(|entry| read_id(&entry.key()?, offset))
                .collect()
        })
        .await
    }

    async fn reaction_counts(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        viewer: Snowflake,
    ) -> StoreResult<Vec<ReactionCount>> {
        self.blocking(move |inner| {
            reaction_counts_in(inner, &inner.db.snapshot(), channel_id, message_id, viewer)
        })
        .await
    }

    async fn reaction_counts_many(
        &self,
        channel_id: Snowflake,
        message_ids: &[Snowflake],
        viewer: Snowflake,
    ) -> StoreResult<Vec<Vec<ReactionCount>>> {
        let message_ids = message_ids.to_vec();
        // One blocking call and one snapshot for the whole page.
        self.blocking(move |inner| {
            let snap = inner.db.snapshot();
            message_ids
                .iter()
                .map(|m| reaction_counts_in(inner, &snap, channel_id, *m, viewer))
                .collect()
        })
        .await
    }

    async fn set_pinned(
        &self,
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    ) -> StoreResult<bool> {
        self.write(move |inner| {
            let _guard = lock(&inner.messages_lock);
            let mut tx = Tx::new(inner);
            let key = message(channel_id, message_id);
            let Some(mut record) = tx.get_json::<MessageRecord>(Ks::Messages, &key)? else {
                return Ok((false, Committed(false)));
            };
            sync_pin(&mut tx, channel_id, message_id, pinned)?;
            if record.pinned != pinned {
                record.pinned = pinned;
                tx.put_json(Ks::Messages, key, &record)?;
            }
            Ok((true, tx.commit()?))
        })
        .await
    }

    async fn list_pins(&self, channel_id: Snowflake) -> StoreResult<Vec<PinnedMessage>> {
        self.blocking(move |inner| {
            let snap = inner.db.snapshot();
            let mut out = Vec::new();
            for entry in snap.prefix(inner.ks(Ks::Pins), id(channel_id)).rev() {
                let key = entry.key()?;
                let pinned_at = Timestamp::from_unix_ms(read_u64(&key, 8)?);
                let message_id = read_id(&key, 16)?;
                if let Some(v) =
                    snap.get(inner.ks(Ks::Messages), message(channel_id, message_id))?
                {
                    out.push(PinnedMessage {
                        pinned_at,
                        message: decode(&v)?,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}
