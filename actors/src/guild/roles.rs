//! Roles: listing, creating, editing, ordering and deleting them.

use enrichment_protocol::models::{AuditLogEntry, Channel, Role, audit_action};
use enrichment_protocol::rest::{RoleBody, RolePosition};
use enrichment_protocol::{ApiError, ErrorCode, FormErrors, Permissions, Snowflake};
use enrichment_storage::GuildWrite;

use super::actor::GuildActorState;
use super::audit::changes;
use crate::events::{Audience, GuildEvent, RoleData, RoleDeleteData};

impl GuildActorState {
    pub(super) fn list_roles(&self, actor: Snowflake) -> Result<Vec<Role>, ApiError> {
        self.state.guild_permissions(actor, self.now())?;
        Ok(self.state.sorted_roles())
    }

    /// A non-administrator may only hand out permissions it holds.
    fn check_grantable(
        &self,
        actor: Snowflake,
        held: Permissions,
        wanted: Permissions,
    ) -> Result<(), ApiError> {
        if actor == self.state.guild.owner_id
            || held.contains(Permissions::ADMINISTRATOR)
            || held.contains(wanted)
        {
            Ok(())
        } else {
            Err(ApiError::missing_permissions())
        }
    }

    pub(super) async fn create_role(
        &mut self,
        actor: Snowflake,
        body: RoleBody,
    ) -> Result<Role, ApiError> {
        let held = self
            .state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        if self.state.roles.len() >= self.ctx.limits.max_roles {
            return Err(ApiError::new(
                400,
                ErrorCode::MaxRoles,
                format!(
                    "Maximum number of server roles reached ({})",
                    self.ctx.limits.max_roles
                ),
            ));
        }
        let permissions = body
            .permissions
            .unwrap_or(self.state.role_permissions_or_default());
        self.check_grantable(actor, held, permissions)?;
        let role = Role {
            id: self.ctx.ids.next_id(),
            name: body.name.unwrap_or_else(|| "new role".into()),
            color: body.color.unwrap_or(0),
            hoist: body.hoist.unwrap_or(false),
            icon: None,
            unicode_emoji: body.unicode_emoji.flatten(),
            position: 1,
            permissions,
            managed: false,
            mentionable: body.mentionable.unwrap_or(false),
            tags: None,
            flags: 0,
        };
        let rows = self.plan_role_at_bottom(&role);
        let entry = self.role_entry(None, Some(&role));
        self.write_logged(self.role_writes(&rows), entry.into_iter().collect())
            .await?;
        self.apply_new_role(rows);
        Ok(role)
    }

    /// ROLE_CREATE / UPDATE / DELETE for a role going from `old` to `new`; `None` for an
    /// update that changed nothing.
    fn role_entry(&self, old: Option<&Role>, new: Option<&Role>) -> Option<AuditLogEntry> {
        let id = new.or(old)?.id;
        let fields = changes(old, new, &["id", "tags", "flags", "managed"]);
        let action = match (old, new) {
            (None, _) => audit_action::ROLE_CREATE,
            (_, None) => audit_action::ROLE_DELETE,
            _ if fields.is_empty() => return None,
            _ => audit_action::ROLE_UPDATE,
        };
        Some(AuditLogEntry {
            changes: fields,
            ..self.audit_entry(action, Some(id))
        })
    }

    /// New roles go directly above @everyone, as on Discord, and the roles above shift up by
    /// one: returns every role row to write, the new one first.
    pub(super) fn plan_role_at_bottom(&self, role: &Role) -> Vec<Role> {
        let gid = self.state.id();
        let mut rows = vec![role.clone()];
        rows.extend(
            self.state
                .roles
                .values()
                .filter(|r| r.id != gid && r.position >= 1)
                .map(|r| Role {
                    position: r.position + 1,
                    ..r.clone()
                }),
        );
        rows
    }

    /// Applies planned role rows to memory after they were written, announcing the new role.
    pub(super) fn apply_new_role(&mut self, rows: Vec<Role>) {
        let gid = self.state.id();
        let created = rows.first().cloned();
        for r in rows {
            self.state.roles.insert(r.id, r);
        }
        if let Some(role) = created {
            self.emit(
                Audience::Guild,
                GuildEvent::RoleCreate(RoleData {
                    guild_id: gid,
                    role,
                }),
            );
        }
    }

    pub(super) fn role_writes(&self, rows: &[Role]) -> Vec<GuildWrite> {
        let gid = self.state.id();
        rows.iter()
            .map(|r| GuildWrite::PutRole {
                guild_id: gid,
                role: r.clone(),
            })
            .collect()
    }

    pub(super) async fn modify_role(
        &mut self,
        actor: Snowflake,
        id: Snowflake,
        body: RoleBody,
    ) -> Result<Role, ApiError> {
        let held = self
            .state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        let mut role = self.state.role(id)?.clone();
        if !self.state.can_manage_role(actor, &role) {
            return Err(ApiError::missing_permissions());
        }
        if let Some(p) = body.permissions {
            // Only newly granted bits need to be held; keeping existing ones is allowed.
            self.check_grantable(actor, held, p - role.permissions)?;
            role.permissions = p;
        }
        if let Some(n) = body.name
            && id != self.state.id()
        {
            role.name = n;
        }
        if let Some(c) = body.color {
            role.color = c;
        }
        if let Some(h) = body.hoist {
            role.hoist = h;
        }
        if let Some(m) = body.mentionable {
            role.mentionable = m;
        }
        if let Some(u) = body.unicode_emoji {
            role.unicode_emoji = u;
        }
        let gid = self.state.id();
        let entry = self.role_entry(self.state.roles.get(&id), Some(&role));
        self.write_logged(
            vec![GuildWrite::PutRole {
                guild_id: gid,
                role: role.clone(),
            }],
            entry.into_iter().collect(),
        )
        .await?;
        self.state.roles.insert(id, role.clone());
        self.emit(
            Audience::Guild,
            GuildEvent::RoleUpdate(RoleData {
                guild_id: gid,
                role: role.clone(),
            }),
        );
        Ok(role)
    }

    pub(super) async fn delete_role(
        &mut self,
        actor: Snowflake,
        id: Snowflake,
    ) -> Result<(), ApiError> {
        self.state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        let gid = self.state.id();
        let role = self.state.role(id)?.clone();
        if id == gid {
            return Err(ApiError::form(
                &["role_id"],
                "ROLE_INVALID",
                "The @everyone role cannot be deleted.",
            ));
        }
        if role.managed || !self.state.can_manage_role(actor, &role) {
            return Err(ApiError::missing_permissions());
        }
        let mut writes = vec![GuildWrite::DeleteRole {
            guild_id: gid,
            role_id: id,
        }];
        let members: Vec<_> = self
            .state
            .members
            .values()
            .filter(|m| m.roles.contains(&id))
            .map(|m| {
                let mut m = m.clone();
                m.roles.retain(|r| *r != id);
                m
            })
            .collect();
        writes.extend(members.iter().cloned().map(GuildWrite::PutMember));
        let channels: Vec<Channel> = self
            .state
            .channels
            .values()
            .filter(|c| c.permission_overwrites.iter().any(|o| o.id == id))
            .map(|c| {
                let mut c = c.clone();
                c.permission_overwrites.retain(|o| o.id != id);
                c
            })
            .collect();
        writes.extend(channels.iter().cloned().map(GuildWrite::PutChannel));
        let entry = self.role_entry(Some(&role), None);
        self.write_logged(writes, entry.into_iter().collect())
            .await?;
        self.state.roles.remove(&id);
        for m in members {
            self.state.members.insert(m.user_id, m);
        }
        for c in channels {
            self.state.channels.insert(c.id, c.clone());
            self.emit(
                Audience::Channel(c.id),
                GuildEvent::ChannelUpdate(self.with_last_message(c)),
            );
        }
        self.emit(
            Audience::Guild,
            GuildEvent::RoleDelete(RoleDeleteData {
                guild_id: gid,
                role_id: id,
            }),
        );
        Ok(())
    }

    pub(super) async fn role_positions(
        &mut self,
        actor: Snowflake,
        body: Vec<RolePosition>,
    ) -> Result<Vec<Role>, ApiError> {
        self.state
            .require_guild(actor, Permissions::MANAGE_ROLES, self.now())?;
        let gid = self.state.id();
        let ceiling = self.state.highest_position(actor);
        let mut changed = Vec::new();
        let mut e = FormErrors::default();
        for (i, p) in body.iter().enumerate() {
            let i = i.to_string();
            let Some(mut role) = self.state.roles.get(&p.id).cloned() else {
                e.add(&[&i, "id"], "ROLE_INVALID", "Unknown role.");
                continue;
            };
            let Some(Some(pos)) = p.position else {
                continue;
            };
            if role.id == gid || pos < 1 {
                e.add(
                    &[&i, "position"],
                    "ROLE_POSITION_INVALID",
                    "Invalid role position.",
                );
                continue;
            }
            if !self.state.can_manage_role(actor, &role) || i64::from(pos) >= ceiling {
                return Err(ApiError::missing_permissions());
            }
            role.position = pos;
            changed.push(role);
        }
        e.finish()?;
        let entries = changed
            .iter()
            .filter_map(|r| self.role_entry(self.state.roles.get(&r.id), Some(r)))
            .collect();
        self.write_logged(
            changed
                .iter()
                .map(|r| GuildWrite::PutRole {
                    guild_id: gid,
                    role: r.clone(),
                })
                .collect(),
            entries,
        )
        .await?;
        for r in changed {
            self.state.roles.insert(r.id, r.clone());
            self.emit(
                Audience::Guild,
                GuildEvent::RoleUpdate(RoleData {
                    guild_id: gid,
                    role: r,
                }),
            );
        }
        Ok(self.state.sorted_roles())
    }
}

impl super::state::GuildState {
    /// A new role's default permissions: those of @everyone, as Discord's client does.
    fn role_permissions_or_default(&self) -> Permissions {
        self.roles
            .get(&self.id())
            .map(|r| r.permissions)
            .unwrap_or_default()
    }
}
