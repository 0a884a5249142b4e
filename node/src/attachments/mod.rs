//! File attachments: Discord's multipart message create, the file route, and the rules for
//! names and types that keep uploaded files from being anything but files.
//!
//! - [`upload`]: `multipart/form-data` on `POST /channels/{id}/messages`; files stream into the
//!   blob store under the size limit, then the message is created; nothing is left behind when
//!   anything fails.
//! - [`serve`]: `GET /attachments/{channel_id}/{attachment_id}/{filename}`, streamed.
//! - [`names`] and [`sniff`]: what a stored file is called, what it is, and how it may be
//!   served.
//!
//! The bytes live in the node's [`enrichment_storage::blobs::BlobStore`] under
//! `{channel_id}/{attachment_id}/{filename}`; the message record holds the attachment objects.
//! The guild actor removes blobs when their messages or channels go.

pub mod names;
pub mod serve;
pub mod sniff;
pub mod upload;
