//! The ordered commit queue behind each guild actor.
//!
//! Each entry is a future that performs a durable write and then yields a completion (reply to
//! the caller, publish the event). Entries run concurrently, so their fsyncs can share one
//! group commit in the store, but completions run strictly in submission order: a client never
//! sees message N+1 acknowledged or broadcast before message N. The queue is bounded; when it
//! is full the actor waits, which backs pressure up into its mailbox.

use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

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
}

async fn run(mut rx: mpsc::Receiver<BoxFuture<'static, Completion>>, depth: usize) {
    let mut in_flight: FuturesOrdered<BoxFuture<'static, Completion>> = FuturesOrdered::new();
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => done(),
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
