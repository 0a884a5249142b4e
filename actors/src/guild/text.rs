//! Small text rules: channel name normalization, mention parsing, reaction emoji parsing.

use enrichment_protocol::models::{ChannelType, Emoji};
use enrichment_protocol::{ApiError, ErrorCode, Snowflake};

/// Text and announcement channel names are lowercase with dashes for spaces, as Discord
/// stores them; other channel types keep their name.
pub fn normalize_channel_name(kind: ChannelType, name: &str) -> String {
    if kind == ChannelType::GUILD_TEXT || kind == ChannelType::GUILD_ANNOUNCEMENT {
        let lowered = name.trim().to_lowercase();
        let dashed: String = lowered.split_whitespace().collect::<Vec<_>>().join("-");
        if dashed.is_empty() {
            "channel".into()
        } else {
            dashed
        }
    } else {
        name.trim().to_owned()
    }
}

/// Mentions found in message content.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    pub users: Vec<Snowflake>,
    pub roles: Vec<Snowflake>,
    /// `@everyone` or `@here` appears.
    pub everyone: bool,
}

/// Finds `<@id>`, `<@!id>`, `<@&id>`, `@everyone` and `@here`; ids are deduplicated in order.
pub fn parse_mentions(content: &str) -> Mentions {
    let mut out = Mentions {
        everyone: content.contains("@everyone") || content.contains("@here"),
        ..Mentions::default()
    };
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let Some(end) = body.find('>') else { break };
        if let Ok(id) = body[..end].parse::<Snowflake>() {
            let list = if is_role {
                &mut out.roles
            } else {
                &mut out.users
            };
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
    out
}

/// A reaction's emoji as a route names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReactionEmoji {
    Unicode(String),
    /// `name:id` (an animated one may come as `a:name:id`); the guild says whether it exists.
    Custom {
        name: String,
        id: Snowflake,
    },
}

/// Parses a reaction emoji from a route segment (already percent-decoded).
///
/// Unicode emoji are accepted by shape: short, no whitespace, and at least one non-ASCII
/// character. A custom emoji is `name:id`; whether the guild has it is the actor's to check.
pub fn parse_reaction_emoji(raw: &str) -> Result<ReactionEmoji, ApiError> {
    let unknown = || ApiError::new(400, ErrorCode::UnknownEmoji, "Unknown Emoji");
    if raw.is_empty() || raw.len() > 64 || raw.chars().any(char::is_whitespace) {
        return Err(unknown());
    }
    if let Some((name, id)) = raw.rsplit_once(':') {
        let name = name.strip_prefix("a:").unwrap_or(name);
        let id: Snowflake = id.parse().map_err(|_| unknown())?;
        if name.is_empty() || name.contains(':') {
            return Err(unknown());
        }
        return Ok(ReactionEmoji::Custom {
            name: name.to_owned(),
            id,
        });
    }
    if raw.is_ascii() {
        return Err(unknown());
    }
    Ok(ReactionEmoji::Unicode(raw.to_owned()))
}

/// The stored key of a custom emoji's reactions: `name:id`, `a:name:id` when animated.
pub fn custom_emoji_key(name: &str, id: Snowflake, animated: bool) -> String {
    if animated {
        format!("a:{name}:{id}")
    } else {
        format!("{name}:{id}")
    }
}

/// The emoji object for a stored reaction key.
pub fn emoji_of_key(key: &str) -> Emoji {
    if let Some((rest, id)) = key.rsplit_once(':')
        && let Ok(id) = id.parse::<Snowflake>()
    {
        return match rest.strip_prefix("a:") {
            Some(name) => Emoji::custom(id, name, true),
            None => Emoji::custom(id, rest, false),
        };
    }
    Emoji::unicode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_found_and_deduplicated() {
        let m = parse_mentions("hi <@1> and <@!1> <@&7> <@2> <@x> <@&> @everyone");
        assert_eq!(m.users, vec![Snowflake(1), Snowflake(2)]);
        assert_eq!(m.roles, vec![Snowflake(7)]);
        assert!(m.everyone);
        assert!(!parse_mentions("plain <@ text").everyone);
        assert_eq!(parse_mentions("@here").users, vec![]);
        assert!(parse_mentions("@here").everyone);
    }

    #[test]
    fn channel_names_follow_discord_rules() {
        assert_eq!(
            normalize_channel_name(ChannelType::GUILD_TEXT, "  My Cool  Channel "),
            "my-cool-channel"
        );
        assert_eq!(
            normalize_channel_name(ChannelType::GUILD_VOICE, " Lounge Room "),
            "Lounge Room"
        );
        assert_eq!(
            normalize_channel_name(ChannelType::GUILD_TEXT, "   "),
            "channel"
        );
    }

    #[test]
    fn emoji_parsing() {
        assert_eq!(
            parse_reaction_emoji("👍").unwrap(),
            ReactionEmoji::Unicode("👍".into())
        );
        assert!(parse_reaction_emoji("🇫🇷").is_ok());
        let custom = ReactionEmoji::Custom {
            name: "party".into(),
            id: Snowflake(123),
        };
        assert_eq!(parse_reaction_emoji("party:123").unwrap(), custom);
        assert_eq!(parse_reaction_emoji("a:party:123").unwrap(), custom);
        for key in ["👍", "party:123", "a:party:123"] {
            let e = emoji_of_key(key);
            assert_eq!(e.animated, key.starts_with("a:"), "{key}");
            let back = match (e.id, e.name.as_deref()) {
                (Some(id), Some(name)) => custom_emoji_key(name, id, e.animated),
                (None, Some(name)) => name.to_owned(),
                other => panic!("{other:?}"),
            };
            assert_eq!(back, key);
        }
        for bad in [
            "",
            "abc",
            "name:x",
            ":123",
            "a:b:c:1",
            "👍 👍",
            &"👍".repeat(20),
        ] {
            assert_eq!(
                parse_reaction_emoji(bad).unwrap_err().code(),
                10014,
                "{bad}"
            );
        }
    }
}
