//! Removing attachment bytes once nothing points at them.
//!
//! The message or channel write comes first; only when it is durable are its blobs deleted, in
//! a task of their own, so a slow or failing blob store never holds up the guild or fails the
//! request that removed the message. A failed delete is logged and counted
//! (`enrichment_blob_delete_failures_total`): the blob is then an orphan, unreachable from any
//! message, that costs space but shows nothing.

use enrichment_protocol::Snowflake;
use enrichment_protocol::models::Attachment;
use enrichment_storage::MessageRecord;
use enrichment_storage::blobs::{BlobKey, channel_prefix};

use super::actor::GuildContext;

/// The blob keys of a message's attachments.
pub(super) fn keys_of(record: &MessageRecord) -> Vec<BlobKey> {
    attachment_keys(record.channel_id, &record.attachments)
}

pub(super) fn attachment_keys(channel_id: Snowflake, attachments: &[Attachment]) -> Vec<BlobKey> {
    attachments
        .iter()
        .filter_map(|a| match BlobKey::attachment(channel_id, a.id, &a.filename) {
            Ok(k) => Some(k),
            Err(e) => {
                // Names are sanitised before they are stored, so this is a record from
                // elsewhere; there is no blob it could name.
                tracing::warn!(%channel_id, attachment_id = %a.id, error = %e, "attachment without a valid blob key");
                None
            }
        })
        .collect()
}

fn failed() {
    metrics::counter!("enrichment_blob_delete_failures_total").increment(1);
}

impl GuildContext {
    /// Deletes blobs whose messages are already gone.
    pub(super) fn discard_blobs(&self, keys: Vec<BlobKey>) {
        if keys.is_empty() {
            return;
        }
        let blobs = self.blobs.clone();
        tokio::spawn(async move {
            for key in keys {
                if let Err(e) = blobs.delete(&key).await {
                    failed();
                    tracing::warn!(%key, error = %e, "could not delete an attachment blob");
                }
            }
        });
    }

    /// Deletes every blob of channels that are already gone.
    pub(super) fn discard_channel_blobs(&self, channels: Vec<Snowflake>) {
        let blobs = self.blobs.clone();
        tokio::spawn(async move {
            for ch in channels {
                if let Err(e) = blobs.delete_prefix(&channel_prefix(ch)).await {
                    failed();
                    tracing::warn!(channel_id = %ch, error = %e, "could not delete the attachment blobs of a channel");
                }
            }
        });
    }
}
