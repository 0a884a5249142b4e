//! The command line: global options and every subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};
use enrichment_protocol::Snowflake;

use crate::error::EXIT_CODES_HELP;

#[derive(Parser, Debug)]
#[command(
    name = "enrichctl",
    version,
    about = "Command-line client and admin tool for an Enrichment server",
    long_about = "Command-line client and admin tool for an Enrichment server.\n\n\
        Log in once (`enrichctl login --login EMAIL --password-stdin`); the token is kept in \
        the user's config directory (enrichctl/credentials.json, mode 0600) and used by every \
        later command. Cluster commands use the admin token instead (--admin-token or \
        ENRICHMENT_ADMIN_TOKEN).",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Server base URL, without /api/v10 [default: the server of the last login, else
    /// http://127.0.0.1:8080]
    #[arg(long, global = true, env = "ENRICHMENT_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Print exactly one JSON value (tail: one JSON object per line) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Admin API token, for `cluster` commands.
    #[arg(
        long,
        global = true,
        env = "ENRICHMENT_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// A snowflake id on the command line.
pub fn id(s: &str) -> Result<Snowflake, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an id: ids are numbers like 175928847299117063"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an account and log in as it.
    Register(Register),
    /// Log in and keep the token for later commands.
    Login(Login),
    /// Revoke the stored login on the server and forget it here.
    Logout,
    /// Show the logged-in user.
    Whoami,
    /// Create, list and inspect guilds.
    #[command(subcommand)]
    Guild(GuildCmd),
    /// Create and list a guild's channels.
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// Create and accept invites.
    #[command(subcommand)]
    Invite(InviteCmd),
    /// Send a message to a channel.
    Send {
        #[arg(value_parser = id, value_name = "CHANNEL_ID")]
        channel: Snowflake,
        /// The message text; `-` reads it from standard input.
        text: String,
    },
    /// Send a direct message to a user (someone who shares a guild with you), opening the DM
    /// the first time. Its id works with `history` and `tail`.
    Dm {
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
        /// The message text; `-` reads it from standard input.
        text: String,
    },
    /// Print a channel's messages, oldest first.
    History {
        #[arg(value_parser = id, value_name = "CHANNEL_ID")]
        channel: Snowflake,
        /// How many of the latest messages (pages of 100 are fetched as needed).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        limit: u32,
        /// Only messages older than this message id.
        #[arg(long, value_parser = id, value_name = "MESSAGE_ID")]
        before: Option<Snowflake>,
    },
    /// Print a channel's new messages as they arrive (through the gateway; resumes across
    /// dropped connections). Stops with Ctrl-C.
    Tail {
        #[arg(value_parser = id, value_name = "CHANNEL_ID")]
        channel: Snowflake,
    },
    /// List, create, edit and delete roles.
    #[command(subcommand)]
    Role(RoleCmd),
    /// List, inspect, kick and change members.
    #[command(subcommand)]
    Member(MemberCmd),
    /// List, add and remove bans.
    #[command(subcommand)]
    Ban(BanCmd),
    /// Create, list and delete webhooks, and post through one.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Print a guild's audit log, newest first (needs VIEW_AUDIT_LOG).
    AuditLog {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        /// Only actions by this user.
        #[arg(long, value_parser = id, value_name = "USER_ID")]
        user: Option<Snowflake>,
        /// Only this action type (Discord's number, e.g. 22 for bans).
        #[arg(long, value_parser = clap::value_parser!(u16))]
        action: Option<u16>,
        /// How many entries (1–100).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
        limit: u8,
        /// Only entries older than this entry id.
        #[arg(long, value_parser = id, value_name = "ENTRY_ID")]
        before: Option<Snowflake>,
    },
    /// Create bots.
    #[command(subcommand)]
    Bot(BotCmd),
    /// Inspect and operate the cluster (needs the admin token).
    #[command(subcommand)]
    Cluster(ClusterCmd),
}

#[derive(Args, Debug)]
pub struct Register {
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Display name.
    #[arg(long)]
    pub global_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct Login {
    /// Email address or username.
    #[arg(long)]
    pub login: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// TOTP or backup code, for accounts with two-factor authentication.
    #[arg(long, value_name = "CODE")]
    pub totp: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum GuildCmd {
    /// Create a guild (it comes with an @everyone role and a #general channel).
    Create { name: String },
    /// List your guilds.
    List,
    /// Show one guild.
    Show {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
    },
    /// Delete a guild you own.
    Delete {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChannelKind {
    Text,
    Voice,
    Category,
    Announcement,
    Stage,
}

#[derive(Subcommand, Debug)]
pub enum ChannelCmd {
    /// Create a channel.
    Create {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        name: String,
        #[arg(long, value_enum, default_value_t = ChannelKind::Text)]
        kind: ChannelKind,
        #[arg(long)]
        topic: Option<String>,
        /// The category to put it in.
        #[arg(long, value_parser = id, value_name = "CHANNEL_ID")]
        parent: Option<Snowflake>,
    },
    /// List a guild's channels.
    List {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
    },
}

#[derive(Subcommand, Debug)]
pub enum InviteCmd {
    /// Create an invite to a channel.
    Create {
        #[arg(value_parser = id, value_name = "CHANNEL_ID")]
        channel: Snowflake,
        /// Uses before it expires (0 = unlimited).
        #[arg(long)]
        max_uses: Option<u32>,
        /// Seconds before it expires (0 = never; default 86400).
        #[arg(long)]
        max_age: Option<u32>,
    },
    /// Join a guild through an invite code.
    Accept { code: String },
}

#[derive(Subcommand, Debug)]
pub enum RoleCmd {
    /// List a guild's roles.
    List {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
    },
    /// Create a role.
    Create {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        name: String,
        #[command(flatten)]
        fields: RoleFields,
    },
    /// Change a role.
    Edit {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "ROLE_ID")]
        role: Snowflake,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: RoleFields,
    },
    /// Delete a role.
    Delete {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "ROLE_ID")]
        role: Snowflake,
    },
}

#[derive(Args, Debug)]
pub struct RoleFields {
    /// Permission bits, as a decimal number (e.g. 3072 = VIEW_CHANNEL | SEND_MESSAGES).
    #[arg(long)]
    pub permissions: Option<u64>,
    /// Colour as RRGGBB hex (e.g. ff8800) or a decimal number.
    #[arg(long, value_parser = colour)]
    pub color: Option<u32>,
    /// Show members with this role separately.
    #[arg(long)]
    pub hoist: Option<bool>,
    /// Allow anyone to @mention it.
    #[arg(long)]
    pub mentionable: Option<bool>,
}

fn colour(s: &str) -> Result<u32, String> {
    let t = s.trim_start_matches('#');
    let v = if t.len() == 6 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(t, 16).ok()
    } else {
        t.parse().ok()
    };
    v.filter(|v| *v <= 0xFF_FFFF)
        .ok_or_else(|| format!("`{s}` is not a colour: use RRGGBB hex (ff8800) or 0-16777215"))
}

#[derive(Subcommand, Debug)]
pub enum MemberCmd {
    /// List a guild's members.
    List {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Show one member.
    Show {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
    },
    /// Remove a member from the guild (they may join again).
    Kick {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
    },
    /// Set (or with no NICK clear) a member's nickname.
    Nick {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
        nick: Option<String>,
    },
    /// Give a member a role.
    AddRole {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
        #[arg(value_parser = id, value_name = "ROLE_ID")]
        role: Snowflake,
    },
    /// Take a role from a member.
    RemoveRole {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
        #[arg(value_parser = id, value_name = "ROLE_ID")]
        role: Snowflake,
    },
}

#[derive(Subcommand, Debug)]
pub enum BanCmd {
    /// List a guild's bans.
    List {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
    },
    /// Ban a user (removes them from the guild).
    Add {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
        /// Also delete their messages from this many past seconds (at most 604800).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=604_800))]
        delete_message_seconds: Option<u32>,
        /// Why, for the ban list and the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban.
    Remove {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        #[arg(value_parser = id, value_name = "USER_ID")]
        user: Snowflake,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhookCmd {
    /// Create a webhook in a channel (needs MANAGE_WEBHOOKS). Its token is printed once; keep
    /// it.
    Create {
        #[arg(value_parser = id, value_name = "CHANNEL_ID")]
        channel: Snowflake,
        name: String,
    },
    /// List a channel's webhooks.
    List {
        #[arg(value_parser = id, value_name = "CHANNEL_ID")]
        channel: Snowflake,
    },
    /// Delete a webhook.
    Delete {
        #[arg(value_parser = id, value_name = "WEBHOOK_ID")]
        webhook: Snowflake,
    },
    /// Post a message through a webhook: its id and token are enough, no login.
    Send {
        #[arg(value_parser = id, value_name = "WEBHOOK_ID")]
        webhook: Snowflake,
        token: String,
        /// The message text; `-` reads it from standard input.
        text: String,
        /// The name to post under instead of the webhook's.
        #[arg(long)]
        username: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BotCmd {
    /// Create an application with a bot user, issue its token and add it to a guild. The
    /// token is printed once; keep it.
    Create {
        name: String,
        #[arg(long, value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
        /// Permission bits of the bot's managed role [default: 3072, VIEW_CHANNEL |
        /// SEND_MESSAGES].
        #[arg(long, default_value_t = 3072)]
        permissions: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Every node with its state, uptime and load.
    Status,
    /// The hash ring, or with --guild the node that owns a guild.
    Ring {
        #[arg(long, value_parser = id, value_name = "GUILD_ID")]
        guild: Option<Snowflake>,
    },
    /// The node that should own a guild, and the node that holds its lease now.
    Owner {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
    },
    /// Drain a node: its gateway clients reconnect elsewhere, it takes no new ones; in a
    /// cluster it also hands its guilds to the others and stops.
    Drain {
        #[arg(value_name = "NODE_ID")]
        node: String,
    },
    /// Reload a guild's actor from storage on the node it runs on (its owner), keeping the
    /// sessions that follow it: the way to pick up a change made to storage behind it.
    Reload {
        #[arg(value_parser = id, value_name = "GUILD_ID")]
        guild: Snowflake,
    },
    /// The JWT signing keys the nodes share.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// The key ids, and which one signs new tokens.
    List,
    /// Sign new tokens with a new key; tokens signed before still verify until they expire.
    Rotate,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn colours_parse_as_hex_or_decimal() {
        assert_eq!(colour("ff8800"), Ok(0xff8800));
        assert_eq!(colour("#FF8800"), Ok(0xff8800));
        assert_eq!(colour("255"), Ok(255));
        assert!(colour("red").is_err());
        assert!(colour("16777216").is_err());
    }
}
