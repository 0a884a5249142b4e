//! Prints who comes online, goes idle or leaves, in every guild the token can see.
//!
//! ```sh
//! ENRICHMENT_SERVER=http://127.0.0.1:8080 BOT_TOKEN=... \
//!     cargo run -p enrichment-client --example presence_watch
//! ```
//! Presences need the GUILD_PRESENCES intent (for bots, the application's presence flag).
//! The optional cache turns user ids into names.

use enrichment_client::cache::Cache;
use enrichment_client::gateway::{Event, Gateway, GatewayOptions};
use enrichment_client::protocol::gateway::intents;
use enrichment_client::{Client, Token};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server =
        std::env::var("ENRICHMENT_SERVER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("BOT_TOKEN").map_err(|_| "set BOT_TOKEN to the bot's token")?;
    let client = Client::builder(server).token(Token::Bot(token)).build()?;
    let options = GatewayOptions {
        intents: intents::GUILDS | intents::GUILD_MEMBERS | intents::GUILD_PRESENCES,
        ..GatewayOptions::default()
    };
    let mut gateway = Gateway::connect(&client, options).await?;
    let mut cache = Cache::new();
    while let Some(event) = gateway.next_event().await {
        let event = event?;
        cache.update(&event);
        match &event {
            Event::GuildCreate(g) => {
                println!("{}: {} online", g.guild.name, g.presences.len());
            }
            Event::PresenceUpdate(p) => {
                let guild = p.guild_id.and_then(|g| cache.guild(g));
                let name = p
                    .guild_id
                    .and_then(|g| cache.member(g, p.user.id))
                    .and_then(|m| m.user.as_ref())
                    .map(|u| u.username.clone())
                    .unwrap_or_else(|| p.user.id.to_string());
                let guild = guild.map(|g| g.guild.name.as_str()).unwrap_or("?");
                println!("{guild}: {name} is {:?}", p.status);
            }
            _ => {}
        }
    }
    Ok(())
}
