//! One module per group of commands; [`run`] dispatches.

mod account;
mod guilds;
mod messages;
mod ops;

use crate::cli::Command;
use crate::error::CliResult;
use crate::session::Ctx;

pub async fn run(ctx: &mut Ctx, command: Command) -> CliResult<()> {
    match command {
        Command::Register(args) => account::register(ctx, args).await,
        Command::Login(args) => account::login(ctx, args).await,
        Command::Logout => account::logout(ctx).await,
        Command::Whoami => account::whoami(ctx).await,
        Command::Guild(cmd) => guilds::guild(ctx, cmd).await,
        Command::Channel(cmd) => guilds::channel(ctx, cmd).await,
        Command::Invite(cmd) => guilds::invite(ctx, cmd).await,
        Command::Role(cmd) => guilds::role(ctx, cmd).await,
        Command::Member(cmd) => guilds::member(ctx, cmd).await,
        Command::Ban(cmd) => guilds::ban(ctx, cmd).await,
        Command::Webhook(cmd) => messages::webhook(ctx, cmd).await,
        Command::AuditLog {
            guild,
            user,
            action,
            limit,
            before,
        } => guilds::audit_log(ctx, guild, user, action, limit, before).await,
        Command::Send { channel, text } => messages::send(ctx, channel, text).await,
        Command::Dm { user, text } => messages::dm(ctx, user, text).await,
        Command::History {
            channel,
            limit,
            before,
        } => messages::history(ctx, channel, limit, before).await,
        Command::Tail { channel } => messages::tail(ctx, channel).await,
        Command::Bot(cmd) => ops::bot(ctx, cmd).await,
        Command::Cluster(cmd) => ops::cluster(ctx, cmd).await,
    }
}
