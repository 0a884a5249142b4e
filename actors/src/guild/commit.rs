//! The one path every guild write takes: [`Change`] says what to write, [`apply`] writes it, the
//! ordered commit queue sequences it, and the actor publishes what changed once it is durable.
//!
//! Every store write of a guild goes through [`apply`]: the guild batch, message creates and
//! edits, deletes, reactions and pins. It is the single place where a write can be fenced (by an
//! ownership epoch, once guilds move between nodes), timed and counted; no other code of the
//! guild calls the stores' write methods (a clippy rule enforces it).
//!
//! The queue: each entry is a future that performs a durable write and then yields a completion
//! (reply to the caller, publish the event). Entries run concurrently, so their fsyncs can share
//! one group commit in the store, but completions run strictly in submission order: a client never
//! sees message N+1 acknowledged or broadcast before message N. Message writes are pipelined
//! through it (the actor takes the next command while they are in flight); every other write is
//! submitted the same way and awaited ([`CommitQueue::submit_and_wait`]), so it too is ordered
//! after the writes before it. A stopping actor flushes the queue ([`CommitQueue::flush`]), so
//! whoever waits for its stop knows its last replies and events are out. The queue is bounded; when
//! it is full the actor waits, which backs pressure up into its mailbox.

use std::time::Instant;

use enrichment_protocol::Snowflake;
use enrichment_storage::{GuildWrite, MessageRecord, StoreError, StoreResult, Stores};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, oneshot};

/// A durable change to one guild, as the stores apply it.
#[derive(Clone, Debug)]
pub enum Change {
    /// Guild metadata, applied atomically.
    Guild {
        guild_id: Snowflake,
        writes: Vec<GuildWrite>,
    },
    /// A new message: refused (`StoreError::Conflict`) if its id is already stored.
    CreateMessage(MessageRecord),
    /// An edit of an existing message.
    UpdateMessage(MessageRecord),
    /// Messages with their reactions and pins.
    DeleteMessages {
        channel_id: Snowflake,
        message_ids: Vec<Snowflake>,
    },
    /// Every message of a channel that is already gone.
    ClearChannel(Snowflake),
    AddReaction {
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: String,
        user_id: Snowflake,
    },
    RemoveReaction {
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: String,
        user_id: Snowflake,
    },
    /// All reactions of a message, or all of one emoji.
    RemoveReactions {
        channel_id: Snowflake,
        message_id: Snowflake,
        emoji: Option<String>,
    },
    SetPinned {
        channel_id: Snowflake,
        message_id: Snowflake,
        pinned: bool,
    },
}

/// What a [`Change`] did, where the store says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// Whether it changed anything (a reaction added or removed, a pin set).
    Changed(bool),
    /// The ids that existed and are now deleted.
    Deleted(Vec<Snowflake>),
}

impl Change {
    fn op(&self) -> &'static str {
        match self {
            Change::Guild { .. } => "write_guild",
            Change::CreateMessage(_) => "create_message",
            Change::UpdateMessage(_) => "update_message",
            Change::DeleteMessages { .. } => "delete_messages",
            Change::ClearChannel(_) => "delete_channel",
            Change::AddReaction { .. } => "add_reaction",
            Change::RemoveReaction { .. } => "remove_reaction",
            Change::RemoveReactions { .. } => "remove_reactions",
            Change::SetPinned { .. } => "set_pinned",
        }
    }
}

/// Writes a change: the only place a guild writes to the stores.
#[allow(
    clippy::disallowed_methods,
    reason = "the guild's one write path is where its store writes are made"
)]
pub async fn apply(stores: &Stores, change: Change) -> StoreResult<Applied> {
    let started = Instant::now();
    let op = change.op();
    let result = match change {
        Change::Guild { guild_id, writes } => stores
            .guilds
            .write_guild(guild_id, writes)
            .await
            .map(|()| Applied::Done),
        Change::CreateMessage(m) => stores
            .messages
            .create_message(&m)
            .await
            .map(|()| Applied::Done),
        // An edit of a message that is gone (deleted meanwhile) writes nothing: `Changed(false)`.
        Change::UpdateMessage(m) => stores
            .messages
            .update_message(&m)
            .await
            .map(Applied::Changed),
        Change::DeleteMessages {
            channel_id,
            message_ids,
        } => stores
            .messages
            .delete_messages(channel_id, &message_ids)
            .await
            .map(Applied::Deleted),
        Change::ClearChannel(channel_id) => stores
            .messages
            .delete_channel(channel_id)
            .await
            .map(|()| Applied::Done),
        Change::AddReaction {
            channel_id,
            message_id,
            emoji,
            user_id,
        } => stores
            .messages
            .add_reaction(channel_id, message_id, &emoji, user_id)
            .await
            .map(Applied::Changed),
        Change::RemoveReaction {
            channel_id,
            message_id,
            emoji,
            user_id,
        } => stores
            .messages
            .remove_reaction(channel_id, message_id, &emoji, user_id)
            .await
            .map(Applied::Changed),
        Change::RemoveReactions {
            channel_id,
            message_id,
            emoji,
        } => stores
            .messages
            .remove_reactions(channel_id, message_id, emoji.as_deref())
            .await
            .map(|()| Applied::Done),
        Change::SetPinned {
            channel_id,
            message_id,
            pinned,
        } => stores
            .messages
            .set_pinned(channel_id, message_id, pinned)
            .await
            .map(Applied::Changed),
    };
    metrics::histogram!("enrichment_store_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    result
}

/// What to do once a write is durable.
pub type Completion = Box<dyn FnOnce() + Send>;

/// A handle for submitting writes; dropping every handle lets the queue drain and stop.
#[derive(Clone, Debug)]
pub struct CommitQueue {
    tx: mpsc::Sender<BoxFuture<'static, Completion>>,
}

impl CommitQueue {
    /// Starts the queue task; at most `depth` writes are in flight at once.
    pub fn start(depth: usize) -> Self {
        let (tx, rx) = mpsc::channel(depth.max(1));
        tokio::spawn(run(rx, depth.max(1)));
        CommitQueue { tx }
    }

    /// Queues a write. Waits while the queue is full.
    pub async fn submit(&self, work: BoxFuture<'static, Completion>) {
        if let Err(mpsc::error::SendError(work)) = self.tx.send(work).await {
            // The queue task is gone (runtime shutting down); still complete in place.
            (work.await)();
        }
    }

    /// Queues `then` with no write: it runs once every completion queued before it has run.
    pub async fn after_queued(&self, then: impl FnOnce() + Send + 'static) {
        self.submit(async move { Box::new(then) as Completion }.boxed())
            .await;
    }

    /// Returns once every completion queued before it has run: the replies and events of the
    /// writes in flight are out.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.after_queued(move || {
            let _ = tx.send(());
        })
        .await;
        let _ = rx.await;
    }

    /// Queues a change and waits for its outcome, which arrives once every write queued
    /// before it has completed.
    pub async fn submit_and_wait(&self, stores: Stores, change: Change) -> StoreResult<Applied> {
        let (tx, rx) = oneshot::channel();
        let entry = Box::pin(async move {
            let out = apply(&stores, change).await;
            Box::new(move || {
                let _ = tx.send(out);
            }) as Completion
        });
        self.submit(entry).await;
        // Only a queue task dropped mid-entry (runtime shutdown) loses the answer; its write
        // may or may not have happened, as with any interrupted write.
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the guild's commit queue stopped".into(),
            ))
        })
    }
}

async fn run(mut rx: mpsc::Receiver<BoxFuture<'static, Completion>>, depth: usize) {
    let mut in_flight: FuturesOrdered<BoxFuture<'static, Completion>> = FuturesOrdered::new();
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                // Every completion ready now (a group commit finishes many writes at once)
                // runs before any session is woken, so each connection writes them together.
                crate::guild::fanout::batched_wakes(|| {
                    done();
                    while let Some(Some(done)) = in_flight.next().now_or_never() {
                        done();
                    }
                });
            }
            next = rx.recv(), if open && in_flight.len() < depth => match next {
                Some(work) => in_flight.push_back(work),
                None => open = false,
            },
            else => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::FutureExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn completions_run_in_submission_order_even_when_writes_finish_out_of_order() {
        let q = CommitQueue::start(16);
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..10u64 {
            let seen = seen.clone();
            // Earlier writes take longer, so they finish last.
            let delay = Duration::from_millis(50 - i * 5);
            q.submit(
                async move {
                    tokio::time::sleep(delay).await;
                    Box::new(move || seen.lock().unwrap().push(i)) as Completion
                }
                .boxed(),
            )
            .await;
        }
        drop(q);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn flush_returns_after_every_completion_queued_before_it() {
        let q = CommitQueue::start(8);
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..4u64 {
            let seen = seen.clone();
            q.submit(
                async move {
                    tokio::time::sleep(Duration::from_millis(100 - i * 10)).await;
                    Box::new(move || seen.lock().unwrap().push(i)) as Completion
                }
                .boxed(),
            )
            .await;
        }
        q.flush().await;
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_run_concurrently() {
        let q = CommitQueue::start(8);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = tokio::time::Instant::now();
        for _ in 0..8 {
            let tx = tx.clone();
            q.submit(
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Box::new(move || {
                        let _ = tx.send(());
                    }) as Completion
                }
                .boxed(),
            )
            .await;
        }
        for _ in 0..8 {
            rx.recv().await.unwrap();
        }
        // On the paused clock, eight concurrent 100 ms writes end at exactly 100 ms;
        // in sequence they would end at 800 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
}
