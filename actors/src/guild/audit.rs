//! The guild's audit log: the entries its actor writes for every moderation and configuration
//! change, and the `GET /guilds/{id}/audit-logs` read.
//!
//! An entry is a row of the same atomic guild batch as the change it records
//! ([`GuildWrite::PutAuditEntry`]), so the store never holds one without the other. It names the
//! request's caller and carries the request's `X-Audit-Log-Reason` ([`super::Caller`]); its
//! `changes` are the record's fields before and after, compared as they appear on the wire
//! ([`changes`]). Once durable, it goes to the members who hold VIEW_AUDIT_LOG as
//! GUILD_AUDIT_LOG_ENTRY_CREATE (intent GUILD_MODERATION).
//!
//! Message deletions, bulk deletions and pins are recorded by a batch of their own right after
//! the message write, which is in the message store: a crash between the two loses that entry,
//! never the deletion itself.

use std::collections::BTreeSet;

use enrichment_protocol::models::{
    AuditEntryInfo, AuditLog, AuditLogChange, AuditLogEntry, Channel, PermissionOverwrite,
    audit_action,
};
use enrichment_protocol::rest::AuditLogFilter;
use enrichment_protocol::{ApiError, Permissions, Snowflake};
use enrichment_storage::GuildWrite;
use serde::Serialize;
use serde_json::Value;

use super::actor::{GuildActorState, GuildContext};
use super::requests::{GetAuditLog, Responder};
use crate::events::{Audience, AuditLogEntryData, GuildEvent};

/// Actions whose `target_id` is a user, whose user object the read answers with.
const USER_TARGETS: [u16; 9] = [
    audit_action::MESSAGE_DELETE,
    audit_action::MESSAGE_PIN,
    audit_action::MESSAGE_UNPIN,
    audit_action::MEMBER_KICK,
    audit_action::MEMBER_BAN_ADD,
    audit_action::MEMBER_BAN_REMOVE,
    audit_action::MEMBER_UPDATE,
    audit_action::MEMBER_ROLE_UPDATE,
    audit_action::BOT_ADD,
];

/// The keys whose values differ between two records as they serialize, old and new (a created
/// record has no old side, a deleted one no new side), in key order; `skip` names keys that are
/// not part of what changed (ids, the parent's id).
pub(super) fn changes<T: Serialize>(
    old: Option<&T>,
    new: Option<&T>,
    skip: &[&str],
) -> Vec<AuditLogChange> {
    let fields = |t: Option<&T>| match t.map(serde_json::to_value) {
        Some(Ok(Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (fields(old), fields(new));
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .filter_map(|k| {
            let (o, n) = (old.get(k), new.get(k));
            // A field that is null or absent on both sides did not change.
            let present = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
            (o != n && (present(o).is_some() || present(n).is_some())).then(|| AuditLogChange {
                key: k.clone(),
                old_value: present(o),
                new_value: present(n),
            })
        })
        .collect()
}

/// What a channel's entries leave out of its changes: ids, what the server maintains, and the
/// overwrites (which get entries of their own).
pub(super) const CHANNEL_SKIP: &[&str] = &[
    "id",
    "guild_id",
    "last_message_id",
    "last_pin_timestamp",
    "flags",
    "permission_overwrites",
];

impl GuildActorState {
    /// The entries for a channel going from `old` to `new` (either absent for a creation or
    /// a deletion): CHANNEL_CREATE / UPDATE / DELETE for its fields, and one
    /// CHANNEL_OVERWRITE_CREATE / UPDATE / DELETE per overwrite that changed. Nothing for no
    /// change.
    pub(super) fn channel_entries(
        &self,
        old: Option<&Channel>,
        new: Option<&Channel>,
    ) -> Vec<AuditLogEntry> {
        let Some(id) = new.or(old).map(|c| c.id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let fields = changes(old, new, CHANNEL_SKIP);
        let action = match (old, new) {
            (None, _) => audit_action::CHANNEL_CREATE,
            (_, None) => audit_action::CHANNEL_DELETE,
            _ => audit_action::CHANNEL_UPDATE,
        };
        if !fields.is_empty() || action != audit_action::CHANNEL_UPDATE {
            out.push(AuditLogEntry {
                changes: fields,
                ..self.audit_entry(action, Some(id))
            });
        }
        // Overwrites of a created or deleted channel are part of that entry's story on
        // Discord too; only an update logs them one by one.
        let (Some(old), Some(new)) = (old, new) else {
            return out;
        };
        let find = |list: &[PermissionOverwrite], target: Snowflake| {
            list.iter().find(|o| o.id == target).cloned()
        };
        let targets: BTreeSet<Snowflake> = old
            .permission_overwrites
            .iter()
            .chain(&new.permission_overwrites)
            .map(|o| o.id)
            .collect();
        for target in targets {
            let (before, after) = (
                find(&old.permission_overwrites, target),
                find(&new.permission_overwrites, target),
            );
            let Some(kind) = after.as_ref().or(before.as_ref()).map(|o| o.kind) else {
                continue;
            };
            let action = match (&before, &after) {
                (None, Some(_)) => audit_action::CHANNEL_OVERWRITE_CREATE,
                (Some(_), None) => audit_action::CHANNEL_OVERWRITE_DELETE,
                (Some(b), Some(a)) if b != a => audit_action::CHANNEL_OVERWRITE_UPDATE,
                _ => continue,
            };
            out.push(AuditLogEntry {
                changes: changes(before.as_ref(), after.as_ref(), &[]),
                options: Some(AuditEntryInfo {
                    id: Some(target),
                    kind: Some(kind.to_string()),
                    role_name: (kind == 0)
                        .then(|| self.state.roles.get(&target).map(|r| r.name.clone()))
                        .flatten(),
                    ..AuditEntryInfo::default()
                }),
                ..self.audit_entry(action, Some(id))
            });
        }
        out
    }

    /// A new entry for an action of the request being run, by its caller, with its reason.
    pub(super) fn audit_entry(&self, action_type: u16, target: Option<Snowflake>) -> AuditLogEntry {
        AuditLogEntry {
            id: self.ctx.ids.next_id(),
            target_id: target.map(|t| t.to_string()),
            changes: Vec::new(),
            user_id: Some(self.caller.actor),
            action_type,
            options: None,
            reason: self.caller.reason.clone(),
        }
    }

    /// Writes `writes` with `entries` in one atomic batch, then sends the entries to who may
    /// read the log.
    pub(super) async fn write_logged(
        &mut self,
        mut writes: Vec<GuildWrite>,
        mut entries: Vec<AuditLogEntry>,
    ) -> Result<(), ApiError> {
        if self.state.is_private() {
            // A private channel keeps no audit log, and its channel row is its record (only a
            // pin's `last_pin_timestamp` comes here as a channel).
            entries.clear();
            for w in &mut writes {
                if let GuildWrite::PutChannel(c) = w {
                    let mut record = self
                        .state
                        .private_record()
                        .ok_or_else(ApiError::dm_channel)?;
                    record.last_pin_timestamp = c.last_pin_timestamp;
                    *w = GuildWrite::PutPrivateChannel(record);
                }
            }
            if writes.is_empty() {
                return Ok(());
            }
        }
        let guild_id = self.state.id();
        writes.extend(entries.iter().map(|entry| GuildWrite::PutAuditEntry {
            guild_id,
            entry: entry.clone(),
        }));
        self.write(writes).await?;
        self.announce(entries);
        Ok(())
    }

    /// Records entries whose change was written elsewhere (the message store): a batch of
    /// their own. A failure is logged, not answered: the change itself is durable.
    pub(super) async fn log_after(&mut self, entries: Vec<AuditLogEntry>) {
        if let Err(e) = self.write_logged(Vec::new(), entries).await {
            tracing::warn!(error = %e, "an audit-log entry could not be written");
        }
    }

    /// Sends durable entries to the members who may read the log.
    pub(super) fn announce(&mut self, entries: Vec<AuditLogEntry>) {
        let guild_id = self.state.id();
        for entry in entries {
            self.emit(
                Audience::GuildPermission(Permissions::VIEW_AUDIT_LOG),
                GuildEvent::AuditLogEntryCreate(AuditLogEntryData { guild_id, entry }),
            );
        }
    }

    /// Checks VIEW_AUDIT_LOG in the actor, then reads in a task of its own.
    pub(super) fn get_audit_log(
        &self,
        actor: Snowflake,
        request: GetAuditLog,
        reply: Responder<GetAuditLog>,
    ) {
        if let Err(e) = self
            .state
            .require_guild(actor, Permissions::VIEW_AUDIT_LOG, self.now())
        {
            return reply.send(Err(e));
        }
        let ctx = self.ctx.clone();
        let guild_id = self.state.id();
        tokio::spawn(async move { reply.send(read_log(&ctx, guild_id, &request.filter).await) });
    }
}

async fn read_log(
    ctx: &GuildContext,
    guild_id: Snowflake,
    filter: &AuditLogFilter,
) -> Result<AuditLog, ApiError> {
    let entries = ctx
        .stores
        .guilds
        .audit_log(guild_id, filter)
        .await
        .map_err(GuildContext::store_error)?;
    let mut ids: BTreeSet<Snowflake> = entries.iter().filter_map(|e| e.user_id).collect();
    ids.extend(
        entries
            .iter()
            .filter(|e| USER_TARGETS.contains(&e.action_type))
            .filter_map(|e| e.target_id.as_deref()?.parse::<u64>().ok().map(Snowflake)),
    );
    let ids: Vec<Snowflake> = ids.into_iter().collect();
    let users = ctx
        .users
        .get_many(&ids)
        .await
        .map_err(GuildContext::store_error)?;
    Ok(AuditLog {
        audit_log_entries: entries,
        users,
        application_commands: Vec::new(),
        auto_moderation_rules: Vec::new(),
        guild_scheduled_events: Vec::new(),
        integrations: Vec::new(),
        threads: Vec::new(),
        webhooks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct Record {
        id: u64,
        name: &'static str,
        topic: Option<&'static str>,
        nsfw: bool,
    }

    #[test]
    fn changes_name_each_differing_key_with_both_sides() {
        let old = Record {
            id: 1,
            name: "general",
            topic: None,
            nsfw: false,
        };
        let new = Record {
            id: 1,
            name: "chat",
            topic: Some("hi"),
            nsfw: false,
        };
        let c = changes(Some(&old), Some(&new), &["id"]);
        assert_eq!(
            c,
            vec![
                AuditLogChange {
                    key: "name".into(),
                    new_value: Some(json!("chat")),
                    old_value: Some(json!("general")),
                },
                AuditLogChange {
                    key: "topic".into(),
                    new_value: Some(json!("hi")),
                    old_value: None,
                },
            ]
        );
    }

    #[test]
    fn a_created_record_has_only_new_values_and_a_deleted_one_only_old_ones() {
        let r = Record {
            id: 7,
            name: "x",
            topic: None,
            nsfw: true,
        };
        let created = changes(None, Some(&r), &["id"]);
        assert_eq!(
            created.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
            ["name", "nsfw"],
            "null fields are no change"
        );
        assert!(created.iter().all(|c| c.old_value.is_none()));
        let deleted = changes(Some(&r), None, &[]);
        assert_eq!(deleted.len(), 3);
        assert!(deleted.iter().all(|c| c.new_value.is_none()));
        assert!(changes(Some(&r), Some(&r), &[]).is_empty());
    }
}
