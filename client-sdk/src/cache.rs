//! An optional in-memory cache of guilds, channels and members, fed by gateway events.
//!
//! The gateway client itself keeps nothing; an application that wants to look things up
//! without a REST call passes every event to [`Cache::update`]. Only what the events carry
//! is known: members arrive through GUILD_CREATE (all of them in small guilds),
//! GUILD_MEMBER_* and member chunks. DMs and group DMs are channels without a guild: a user's
//! READY lists them, CHANNEL_CREATE adds them, and their recipients follow
//! CHANNEL_RECIPIENT_ADD / _REMOVE.

use std::collections::HashMap;

use enrichment_protocol::Snowflake;
use enrichment_protocol::models::{Channel, Guild, Member};

use crate::gateway::Event;

/// One cached guild.
#[derive(Clone, Debug)]
pub struct CachedGuild {
    /// The guild with its roles.
    pub guild: Guild,
    /// Channel ids of the guild.
    pub channels: Vec<Snowflake>,
    /// Members known so far, by user id.
    pub members: HashMap<Snowflake, Member>,
    /// The member count the server last reported.
    pub member_count: u64,
}

/// Guilds, channels and members seen on the gateway.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    guilds: HashMap<Snowflake, CachedGuild>,
    channels: HashMap<Snowflake, Channel>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Applies one event.
    pub fn update(&mut self, event: &Event) {
        match event {
            Event::GuildCreate(gc) => {
                let id = gc.guild.id;
                let members = gc
                    .members
                    .iter()
                    .filter_map(|m| m.user.as_ref().map(|u| (u.id, m.clone())))
                    .collect();
                let mut guild = gc.guild.clone();
                guild.roles = gc.guild.roles.clone();
                for c in &gc.channels {
                    let mut c = c.clone();
                    c.guild_id.get_or_insert(id);
                    self.channels.insert(c.id, c);
                }
                self.guilds.insert(
                    id,
                    CachedGuild {
                        guild,
                        channels: gc.channels.iter().map(|c| c.id).collect(),
                        members,
                        member_count: gc.member_count,
                    },
                );
            }
            Event::Ready(r) => {
                for c in &r.private_channels {
                    if let Ok(c) = serde_json::from_value::<Channel>(c.clone()) {
                        self.channels.insert(c.id, c);
                    }
                }
            }
            Event::GuildEmojisUpdate(e) => {
                if let Some(cg) = self.guilds.get_mut(&e.guild_id) {
                    cg.guild.emojis = e.emojis.clone();
                }
            }
            Event::ChannelRecipientAdd(r) => {
                if let Some(p) = self
                    .channels
                    .get_mut(&r.channel_id)
                    .and_then(|c| c.private.as_mut())
                    && !p.recipients.iter().any(|u| u.id == r.user.id)
                {
                    p.recipients.push(r.user.clone());
                }
            }
            Event::ChannelRecipientRemove(r) => {
                if let Some(p) = self
                    .channels
                    .get_mut(&r.channel_id)
                    .and_then(|c| c.private.as_mut())
                {
                    p.recipients.retain(|u| u.id != r.user.id);
                }
            }
            Event::GuildUpdate(g) => {
                if let Some(cg) = self.guilds.get_mut(&g.id) {
                    cg.guild = (**g).clone();
                }
            }
            Event::GuildDelete(d) => {
                if let Some(cg) = self.guilds.remove(&d.id) {
                    for c in cg.channels {
                        self.channels.remove(&c);
                    }
                }
            }
            Event::ChannelCreate(c) | Event::ChannelUpdate(c) => {
                if let Some(cg) = c.guild_id.and_then(|g| self.guilds.get_mut(&g))
                    && !cg.channels.contains(&c.id)
                {
                    cg.channels.push(c.id);
                }
                self.channels.insert(c.id, (**c).clone());
            }
            Event::ChannelDelete(c) => {
                self.channels.remove(&c.id);
                if let Some(cg) = c.guild_id.and_then(|g| self.guilds.get_mut(&g)) {
                    cg.channels.retain(|id| *id != c.id);
                }
            }
            Event::GuildRoleCreate(r) | Event::GuildRoleUpdate(r) => {
                if let Some(cg) = self.guilds.get_mut(&r.guild_id) {
                    cg.guild.roles.retain(|x| x.id != r.role.id);
                    cg.guild.roles.push(r.role.clone());
                }
            }
            Event::GuildRoleDelete(r) => {
                if let Some(cg) = self.guilds.get_mut(&r.guild_id) {
                    cg.guild.roles.retain(|x| x.id != r.role_id);
                }
            }
            Event::GuildMemberAdd(m) | Event::GuildMemberUpdate(m) => {
                let added = matches!(event, Event::GuildMemberAdd(_));
                if let (Some(cg), Some(user)) =
                    (self.guilds.get_mut(&m.guild_id), m.member.user.as_ref())
                {
                    cg.members.insert(user.id, m.member.clone());
                    if added {
                        cg.member_count += 1;
                    }
                }
            }
            Event::GuildMemberRemove(m) => {
                if let Some(cg) = self.guilds.get_mut(&m.guild_id)
                    && cg.members.remove(&m.user.id).is_some()
                {
                    cg.member_count = cg.member_count.saturating_sub(1);
                }
            }
            Event::GuildMembersChunk(chunk) => {
                if let Some(cg) = self.guilds.get_mut(&chunk.guild_id) {
                    for m in &chunk.members {
                        if let Some(u) = &m.user {
                            cg.members.insert(u.id, m.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A cached guild.
    pub fn guild(&self, id: Snowflake) -> Option<&CachedGuild> {
        self.guilds.get(&id)
    }

    /// Every cached guild.
    pub fn guilds(&self) -> impl Iterator<Item = &CachedGuild> {
        self.guilds.values()
    }

    /// A cached channel.
    pub fn channel(&self, id: Snowflake) -> Option<&Channel> {
        self.channels.get(&id)
    }

    /// A cached member.
    pub fn member(&self, guild_id: Snowflake, user_id: Snowflake) -> Option<&Member> {
        self.guilds.get(&guild_id)?.members.get(&user_id)
    }
}

#[cfg(test)]
mod tests {
    use enrichment_protocol::gateway::dispatch::{ChannelRecipientData, GuildEmojisUpdateData};
    use enrichment_protocol::models::{Emoji, User};
    use serde_json::json;

    use super::*;

    #[test]
    fn private_channels_and_emojis_follow_their_events() {
        let mut cache = Cache::new();
        let dm: Channel = serde_json::from_value(json!({
            "id": "9", "type": 3, "position": 0, "permission_overwrites": [], "topic": null,
            "nsfw": false, "last_message_id": null, "rate_limit_per_user": 0, "parent_id": null,
            "last_pin_timestamp": null, "flags": 0, "recipients": [], "owner_id": "1"
        }))
        .unwrap();
        cache.update(&Event::ChannelCreate(Box::new(dm)));
        let ana = User::new(Snowflake(5), "ana");
        let data = ChannelRecipientData {
            channel_id: Snowflake(9),
            user: ana.clone(),
        };
        cache.update(&Event::ChannelRecipientAdd(Box::new(data.clone())));
        cache.update(&Event::ChannelRecipientAdd(Box::new(data.clone())));
        let recipients = |c: &Cache| {
            c.channel(Snowflake(9))
                .and_then(|c| c.private.as_ref())
                .map(|p| p.recipients.len())
        };
        assert_eq!(recipients(&cache), Some(1), "added once");
        cache.update(&Event::ChannelRecipientRemove(Box::new(data)));
        assert_eq!(recipients(&cache), Some(0));

        // An emoji update for a guild not cached changes nothing; for a cached one, its list.
        let update = GuildEmojisUpdateData {
            guild_id: Snowflake(3),
            emojis: vec![Emoji::custom(Snowflake(4), "wave", false)],
        };
        cache.update(&Event::GuildEmojisUpdate(Box::new(update.clone())));
        assert!(cache.guild(Snowflake(3)).is_none());
        cache.guilds.insert(
            Snowflake(3),
            CachedGuild {
                guild: Guild::new(Snowflake(3), "g", Snowflake(1)),
                channels: Vec::new(),
                members: HashMap::new(),
                member_count: 1,
            },
        );
        cache.update(&Event::GuildEmojisUpdate(Box::new(update)));
        assert_eq!(cache.guild(Snowflake(3)).unwrap().guild.emojis.len(), 1);
    }
}
