//! Prints a channel's history, then its new messages as they arrive.
//!
//! ```sh
//! ENRICHMENT_SERVER=http://127.0.0.1:8080 TOKEN=... \
//!     cargo run -p enrichment-client --example tail -- CHANNEL_ID
//! ```
//! `TOKEN` is a user's access token (`Bearer`); set `BOT=1` for a bot token.

use enrichment_client::gateway::{Event, Gateway, GatewayOptions};
use enrichment_client::protocol::Snowflake;
use enrichment_client::protocol::gateway::intents;
use enrichment_client::protocol::models::Message;
use enrichment_client::protocol::rest::MessagesQuery;
use enrichment_client::{Client, Token};

fn show(m: &Message) {
    println!("[{}] {}: {}", m.timestamp, m.author.username, m.content);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server =
        std::env::var("ENRICHMENT_SERVER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let secret = std::env::var("TOKEN").map_err(|_| "set TOKEN to an access or bot token")?;
    let token = if std::env::var("BOT").is_ok() {
        Token::Bot(secret)
    } else {
        Token::Bearer(secret)
    };
    let channel: Snowflake = std::env::args()
        .nth(1)
        .ok_or("usage: tail CHANNEL_ID")?
        .parse()
        .map_err(|_| "CHANNEL_ID must be a snowflake")?;
    let client = Client::builder(server).token(token).build()?;

    // Connect first so nothing sent between the history read and the subscription is missed.
    let options = GatewayOptions {
        intents: intents::GUILDS | intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT,
        ..GatewayOptions::default()
    };
    let mut gateway = Gateway::connect(&client, options).await?;
    let history = client
        .get_channel_messages(
            channel,
            &MessagesQuery {
                limit: Some(20),
                ..MessagesQuery::default()
            },
        )
        .await?;
    let mut last = None;
    for m in history.iter().rev() {
        show(m);
        last = Some(m.id);
    }
    while let Some(event) = gateway.next_event().await {
        if let Event::MessageCreate(m) = event?
            && m.channel_id == channel
            && last.is_none_or(|l| m.id > l)
        {
            show(&m);
        }
    }
    Ok(())
}
