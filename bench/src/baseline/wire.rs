//! The two baselines' wire formats, as far as the load generator speaks them: Socket.IO 4 over
//! its websocket transport (engine.io protocol 4) and the `ws` server's plain JSON frames.
//!
//! Socket.IO text frames are an engine.io packet type digit followed by its data; a `4`
//! (message) carries a Socket.IO packet, itself a type digit, an optional `/namespace,`, an
//! optional acknowledgement id and a JSON payload. The generator needs only a handful of them:
//! the open packet, pings (answered with pongs), the namespace connect acknowledgement and
//! events, so it classifies frames by their leading bytes and splits an event into its name and
//! its argument without parsing the JSON, which keeps the generator's CPU per delivery close to
//! what it spends on the node's frames.

/// An engine.io packet, borrowed from a text frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eio<'a> {
    /// `0{...}`: the handshake (sid, ping interval and timeout).
    Open(&'a str),
    /// `1`
    Close,
    /// `2`, or `2probe` during a transport upgrade. Answered with a pong carrying the same data.
    Ping(&'a str),
    /// `3`
    Pong(&'a str),
    /// `4...`: a Socket.IO packet.
    Message(Sio<'a>),
    /// `5` (upgrade) or `6` (noop).
    Other(u8),
}

/// A Socket.IO packet (the payload of an engine.io message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sio<'a> {
    /// `0`, with the server's `{"sid":...}` when it accepts the connection.
    Connect(&'a str),
    /// `1`
    Disconnect,
    /// `2["name",arg]` (the first argument only; the baselines send one).
    Event { name: &'a str, arg: &'a str },
    /// `4{...}`: the namespace refused the connection.
    ConnectError(&'a str),
    /// Acks, binary events and anything this harness does not use.
    Other(u8),
}

/// Why a frame could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Classifies an engine.io text frame.
pub fn eio(frame: &str) -> Result<Eio<'_>, Malformed> {
    let mut chars = frame.chars();
    let kind = chars.next().ok_or(Malformed)?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => Eio::Open(rest),
        '1' => Eio::Close,
        '2' => Eio::Ping(rest),
        '3' => Eio::Pong(rest),
        '4' => Eio::Message(sio(rest)?),
        '5' => Eio::Other(5),
        '6' => Eio::Other(6),
        _ => return Err(Malformed),
    })
}

/// Reads a Socket.IO packet (the part after engine.io's `4`).
pub fn sio(packet: &str) -> Result<Sio<'_>, Malformed> {
    let mut chars = packet.chars();
    let kind = chars.next().ok_or(Malformed)?;
    let rest = skip_namespace(chars.as_str());
    Ok(match kind {
        '0' => Sio::Connect(rest),
        '1' => Sio::Disconnect,
        '2' => {
            let (name, arg) = event(rest.trim_start_matches(|c: char| c.is_ascii_digit()))?;
            Sio::Event { name, arg }
        }
        '4' => Sio::ConnectError(rest),
        d @ '3'..='6' => Sio::Other(d as u8 - b'0'),
        _ => return Err(Malformed),
    })
}

/// Drops a leading `/namespace,` (absent for the default namespace).
fn skip_namespace(rest: &str) -> &str {
    if rest.starts_with('/') {
        match rest.find(',') {
            Some(at) => &rest[at + 1..],
            // A namespace with no payload after it, e.g. `0/admin`.
            None => "",
        }
    } else {
        rest
    }
}

/// Splits `["name",arg]` (or `["name"]`) into the name and the first argument's JSON text.
/// Event names with escapes are not used by the baselines and are refused.
fn event(array: &str) -> Result<(&str, &str), Malformed> {
    let inner = array
        .strip_prefix("[\"")
        .and_then(|a| a.strip_suffix(']'))
        .ok_or(Malformed)?;
    let end = inner.find('"').ok_or(Malformed)?;
    let name = &inner[..end];
    if name.contains('\\') {
        return Err(Malformed);
    }
    let after = &inner[end + 1..];
    let arg = match after.strip_prefix(',') {
        Some(arg) => arg,
        None if after.is_empty() => "",
        None => return Err(Malformed),
    };
    Ok((name, arg))
}

/// The client's reply to a ping: a pong with the same data.
pub fn pong(ping_data: &str) -> String {
    format!("3{ping_data}")
}

/// What the client sends after the open packet to join the default namespace.
pub const CONNECT_DEFAULT: &str = "40";

/// Whether a `ws` baseline frame is the join confirmation `{"joined":"ROOM"}`.
pub fn ws_joined(frame: &str) -> bool {
    frame.starts_with("{\"joined\":")
}

/// The JSON body posted to a room: `{"content":"<content>"}`. The content is the harness's
/// own (digits, spaces and letters), so it needs no escaping; anything else is refused.
pub fn body(content: &str) -> Option<String> {
    if content.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        return None;
    }
    Some(format!("{{\"content\":\"{content}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_engine_io_packets_a_server_sends() {
        let open = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert!(matches!(eio(open), Ok(Eio::Open(j)) if j.starts_with("{\"sid\"")));
        assert_eq!(eio("2"), Ok(Eio::Ping("")));
        assert_eq!(eio("2probe"), Ok(Eio::Ping("probe")));
        assert_eq!(pong("probe"), "3probe");
        assert_eq!(pong(""), "3");
        assert_eq!(eio("3"), Ok(Eio::Pong("")));
        assert_eq!(eio("1"), Ok(Eio::Close));
        assert_eq!(eio("6"), Ok(Eio::Other(6)));
        assert_eq!(eio(""), Err(Malformed));
        assert_eq!(eio("9"), Err(Malformed));
        assert_eq!(eio("x"), Err(Malformed));
    }

    #[test]
    fn reads_socket_io_packets() {
        assert_eq!(
            eio(r#"40{"sid":"s1"}"#),
            Ok(Eio::Message(Sio::Connect(r#"{"sid":"s1"}"#)))
        );
        assert_eq!(eio("40"), Ok(Eio::Message(Sio::Connect(""))));
        assert_eq!(eio("41"), Ok(Eio::Message(Sio::Disconnect)));
        assert_eq!(
            eio(r#"44{"message":"Not authorized"}"#),
            Ok(Eio::Message(Sio::ConnectError(
                r#"{"message":"Not authorized"}"#
            )))
        );
        assert_eq!(eio("43"), Ok(Eio::Message(Sio::Other(3))));
        assert_eq!(eio("4"), Err(Malformed));
    }

    #[test]
    fn splits_events_without_parsing_their_argument() {
        let f = r#"42["message",{"content":"lat 123 7 xx"}]"#;
        assert_eq!(
            eio(f),
            Ok(Eio::Message(Sio::Event {
                name: "message",
                arg: r#"{"content":"lat 123 7 xx"}"#
            }))
        );
        // The argument may itself contain brackets, quotes and commas.
        let f = r#"42["message",{"a":[1,2],"b":"x\",]"}]"#;
        assert!(
            matches!(eio(f), Ok(Eio::Message(Sio::Event { name: "message", arg })) if arg == r#"{"a":[1,2],"b":"x\",]"}"#)
        );
        assert_eq!(
            eio(r#"42["joined","r7"]"#),
            Ok(Eio::Message(Sio::Event {
                name: "joined",
                arg: "\"r7\""
            }))
        );
        // With a namespace and an acknowledgement id; and no argument at all.
        assert_eq!(
            eio(r#"42/chat,17["ping"]"#),
            Ok(Eio::Message(Sio::Event {
                name: "ping",
                arg: ""
            }))
        );
        assert_eq!(eio("42[]"), Err(Malformed));
        assert_eq!(eio(r#"42["a"x]"#), Err(Malformed));
        assert_eq!(eio(r#"42["a\"b",1]"#), Err(Malformed));
    }

    #[test]
    fn the_posted_body_carries_the_latency_mark() {
        let b = body("lat 123 7 xx").unwrap_or_default();
        assert_eq!(b, r#"{"content":"lat 123 7 xx"}"#);
        assert_eq!(
            crate::gateway::client::latency_mark(b.as_bytes()),
            Some((123, 7))
        );
        // What the Socket.IO server sends still carries it.
        let frame = format!(r#"42["message",{b}]"#);
        assert_eq!(
            crate::gateway::client::latency_mark(frame.as_bytes()),
            Some((123, 7))
        );
        assert_eq!(body("a\"b"), None);
        assert!(ws_joined(r#"{"joined":"r1"}"#));
        assert!(!ws_joined(&b));
    }
}
