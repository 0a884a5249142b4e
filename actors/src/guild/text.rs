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

/// Parses a reaction emoji from a route segment (already percent-decoded).
///
/// Unicode emoji are accepted by shape: short, no whitespace, and at least one non-ASCII
/// character. Custom emoji (`name:id`) need guild emoji, which this server does not host yet, so
/// they get Discord's "Unknown Emoji".
pub fn parse_reaction_emoji(raw: &str) -> Result<(String, Emoji), ApiError> {
    let unknown = || ApiError::new(400, ErrorCode::UnknownEmoji, "Unknown Emoji");
    if raw.is_empty()
        || raw.len() > 64
        || raw.contains(':')
        || raw.chars().any(char::is_whitespace)
        || raw.is_ascii()
    {
        return Err(unknown());
    }
    Ok((
        raw.to_owned(),
        Emoji {
            id: None,
            name: Some(raw.to_owned()),
            animated: false,
        },
    ))
}

/// The emoji object for a stored reaction key.
pub fn emoji_of_key(key: &str) -> Emoji {
    Emoji {
        id: None,
        name: Some(key.to_owned()),
        animated: false,
    }
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
        assert_eq!(parse_reaction_emoji("👍").unwrap().0, "👍");
        assert!(parse_reaction_emoji("🇫🇷").is_ok());
        for bad in ["", "abc", "name:123", "👍 👍", &"👍".repeat(20)] {
            assert_eq!(
                parse_reaction_emoji(bad).unwrap_err().code(),
                10014,
                "{bad}"
            );
        }
    }
}
