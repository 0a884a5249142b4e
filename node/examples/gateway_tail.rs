//! Prints a node's gateway dispatches as they arrive: a minimal Discord-style gateway client.
//!
//! ```sh
//! cargo run --release -p enrichment-node --example gateway_tail -- \
//!     --api http://127.0.0.1:8080/api/v10 --token "$ALICE" --seconds 60
//! ```
//! It discovers the gateway with `GET /gateway`, identifies with GUILDS, GUILD_MESSAGES,
//! GUILD_MESSAGE_REACTIONS, GUILD_MESSAGE_TYPING and MESSAGE_CONTENT, heartbeats on the
//! interval HELLO gives, and prints one line per dispatch until `--seconds` pass.

use std::time::Duration;

use enrichment_protocol::gateway::{Outbound, intents, op};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args();
    args.position(|a| a == name)?;
    args.next()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let api = arg("--api").unwrap_or_else(|| "http://127.0.0.1:8080/api/v10".into());
    let token = arg("--token").ok_or_else(|| anyhow::anyhow!("--token is required"))?;
    let seconds: u64 = arg("--seconds").map_or(Ok(60), |s| s.parse())?;
    let gateway: serde_json::Value = reqwest::get(format!("{api}/gateway")).await?.json().await?;
    let url = gateway["url"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("GET /gateway gave no url: {gateway}"))?;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{url}/?v=10&encoding=json")).await?;
    let wanted = intents::GUILDS
        | intents::GUILD_MESSAGES
        | intents::GUILD_MESSAGE_REACTIONS
        | intents::GUILD_MESSAGE_TYPING
        | intents::MESSAGE_CONTENT;
    let identify = json!({"op": op::IDENTIFY, "d": {"token": token, "intents": wanted,
        "properties": {"os": std::env::consts::OS, "browser": "gateway_tail", "device": "gateway_tail"}}});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut beat = tokio::time::interval(Duration::from_secs(3600));
    let mut last_seq: Option<u64> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = beat.tick() => {
                ws.send(Message::Text(json!({"op": op::HEARTBEAT, "d": last_seq}).to_string().into())).await?;
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        println!("closed: {frame:?}");
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                    None => break,
                };
                let frame = Outbound::decode(enrichment_protocol::gateway::Encoding::Json, text.as_bytes())
                    .map_err(|e| anyhow::anyhow!(e))?;
                match frame.op {
                    op::HELLO => {
                        let ms = frame.d["heartbeat_interval"].as_u64().unwrap_or(41_250);
                        beat = tokio::time::interval(Duration::from_millis(ms));
                        beat.tick().await;
                        ws.send(Message::Text(identify.to_string().into())).await?;
                    }
                    op::DISPATCH => {
                        last_seq = frame.s;
                        println!("{} {}", frame.t.unwrap_or_default(), frame.d);
                    }
                    op::HEARTBEAT => {
                        ws.send(Message::Text(json!({"op": op::HEARTBEAT, "d": last_seq}).to_string().into())).await?;
                    }
                    op::INVALID_SESSION => {
                        println!("invalid session; try again in a few seconds");
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}
