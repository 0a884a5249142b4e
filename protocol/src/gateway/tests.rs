#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn frame(encoding: Encoding, prefix: &[u8], seq: u64) -> Outbound {
    let mut out = BytesMut::new();
    finish_dispatch(encoding, prefix, seq, &mut out);
    Outbound::decode(encoding, &out).unwrap()
}

#[test]
fn a_spliced_dispatch_decodes_to_the_same_frame_in_both_encodings() {
    let d = json!({"id": "1", "content": "hi \"there\"", "nested": {"n": [1, 2, 3]}});
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        let prefix = dispatch_prefix(encoding, "MESSAGE_CREATE", &d).unwrap();
        for seq in [
            1u64,
            9,
            10,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            let mut out = BytesMut::new();
            finish_dispatch(encoding, &prefix, seq, &mut out);
            assert_eq!(
                dispatch_len(encoding, prefix.len(), seq),
                out.len(),
                "{seq}"
            );
            let f = frame(encoding, &prefix, seq);
            assert_eq!(f.op, 0);
            assert_eq!(f.s, Some(seq), "{encoding:?}");
            assert_eq!(f.t.as_deref(), Some("MESSAGE_CREATE"));
            assert_eq!(f.d, d);
        }
    }
}

#[test]
fn control_frames_carry_null_s_and_t() {
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        let bytes = control_frame(
            encoding,
            op::HELLO,
            &Hello {
                heartbeat_interval: 41_250,
            },
        )
        .unwrap();
        let f = Outbound::decode(encoding, &bytes).unwrap();
        assert_eq!(f.op, op::HELLO);
        assert_eq!(f.s, None);
        assert_eq!(f.t, None);
        assert_eq!(f.d, json!({"heartbeat_interval": 41_250}));
    }
}

#[test]
fn identify_reads_from_json_and_msgpack_alike() {
    let identify = Identify {
        token: "Bot abc".into(),
        properties: ConnectionProperties {
            os: "linux".into(),
            browser: "x".into(),
            device: "x".into(),
        },
        intents: intents::GUILDS | intents::GUILD_MESSAGES,
        shard: Some([0, 2]),
        large_threshold: Some(50),
        presence: Some(PresenceUpdate {
            status: Status::Idle,
            ..Default::default()
        }),
        compress: None,
    };
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        let bytes = client_frame(encoding, op::IDENTIFY, &identify).unwrap();
        let inbound = Inbound::decode(encoding, &bytes).unwrap();
        assert_eq!(inbound.op, op::IDENTIFY);
        assert_eq!(inbound.data::<Identify>().unwrap(), identify);
    }
}

#[test]
fn legacy_dollar_properties_are_accepted() {
    let raw = br#"{"op":2,"d":{"token":"t","intents":1,"properties":{"$os":"linux","$browser":"b","$device":"d"}}}"#;
    let id: Identify = Inbound::decode(Encoding::Json, raw)
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(id.properties.os, "linux");
}

#[test]
fn request_guild_members_takes_one_id_or_a_list() {
    let one: RequestGuildMembers =
        serde_json::from_value(json!({"guild_id": "1", "user_ids": "5", "limit": 0})).unwrap();
    assert_eq!(one.user_ids.unwrap().into_vec(), vec![Snowflake(5)]);
    let many: RequestGuildMembers =
        serde_json::from_value(json!({"guild_id": "1", "user_ids": ["5", "6"]})).unwrap();
    assert_eq!(many.user_ids.unwrap().into_vec().len(), 2);
}

#[test]
fn connect_params_follow_discord() {
    let p = ConnectParams::parse(Some("v=10&encoding=msgpack&compress=zlib-stream")).unwrap();
    assert_eq!(p.encoding, Encoding::MsgPack);
    assert_eq!(p.compress, TransportCompression::ZlibStream);
    let p = ConnectParams::parse(Some("v=10&encoding=json&compress=zstd-stream")).unwrap();
    assert_eq!(p.compress, TransportCompression::ZstdStream);
    assert_eq!(
        ConnectParams::parse(Some("v=10")).unwrap().compress,
        TransportCompression::None
    );
    assert_eq!(ConnectParams::parse(None).unwrap().version, 10);
    assert_eq!(
        ConnectParams::parse(Some("v=6")),
        Err(CloseCode::InvalidApiVersion)
    );
    assert_eq!(
        ConnectParams::parse(Some("v=10&encoding=etf")),
        Err(CloseCode::DecodeError)
    );
    assert_eq!(
        ConnectParams::parse(Some("v=10&compress=brotli-stream")),
        Err(CloseCode::DecodeError)
    );
}

#[test]
fn close_codes_round_trip_and_say_whether_to_reconnect() {
    for code in 4000..=4014 {
        if let Some(c) = CloseCode::from_code(code) {
            assert_eq!(c.code(), code);
        }
    }
    assert!(CloseCode::from_code(4006).is_none());
    assert!(CloseCode::InvalidSeq.reconnectable());
    assert!(!CloseCode::AuthenticationFailed.reconnectable());
    assert!(!CloseCode::DisallowedIntents.reconnectable());
}

#[test]
fn privileged_intents_follow_application_flags() {
    assert_eq!(app_flags::allowed_intents(0), 0);
    let all = app_flags::SELF_SETTABLE;
    assert_eq!(app_flags::allowed_intents(all), intents::PRIVILEGED);
    assert_eq!(
        app_flags::allowed_intents(app_flags::GATEWAY_MESSAGE_CONTENT),
        intents::MESSAGE_CONTENT
    );
    assert_eq!(intents::ALL & (1 << 17), 0);
    assert_ne!(intents::ALL & intents::GUILD_MESSAGE_POLLS, 0);
}
