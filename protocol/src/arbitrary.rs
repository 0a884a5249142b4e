//! proptest strategies for the wire types (feature `arbitrary`), so property tests elsewhere can
//! generate any request, reply or event and check that it survives a trip over the wire.
//!
//! Most types derive `Arbitrary`; this module covers the leaves whose derived values would not be
//! valid on the wire: ids and instants in their real ranges, permission bits Discord defines, and
//! free-form JSON (embeds' images, components), kept small.

use proptest::prelude::*;
use serde_json::Value;

use crate::models::ChannelType;
use crate::{Permissions, Snowflake, Timestamp};

impl Arbitrary for Snowflake {
    type Parameters = ();
    type Strategy = BoxedStrategy<Snowflake>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        // Ids as they are minted (time since 2015, worker, process, increment), and the
        // extremes; `u64::MAX` still has to read back as a string of digits.
        prop_oneof![
            (0u64..(1 << 41), 0u64..(1 << 22)).prop_map(|(ms, low)| Snowflake((ms << 22) | low)),
            Just(Snowflake(0)),
            Just(Snowflake(u64::MAX)),
        ]
        .boxed()
    }
}

impl Arbitrary for Timestamp {
    type Parameters = ();
    type Strategy = BoxedStrategy<Timestamp>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        // Millisecond instants from 1970 to 2200: what the ISO8601 form round-trips.
        (0u64..7_258_118_400_000)
            .prop_map(Timestamp::from_unix_ms)
            .boxed()
    }
}

impl Arbitrary for Permissions {
    type Parameters = ();
    type Strategy = BoxedStrategy<Permissions>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        any::<u64>()
            .prop_map(Permissions::from_bits_truncate)
            .boxed()
    }
}

impl Arbitrary for ChannelType {
    type Parameters = ();
    type Strategy = BoxedStrategy<ChannelType>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        any::<u8>().prop_map(ChannelType).boxed()
    }
}

/// Free-form JSON as clients send it in embeds and components: objects of strings, integers,
/// booleans and nested objects or arrays, a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object (components and embed parts are objects).
pub fn json_object() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map("[a-z]{1,6}", json(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A list of JSON objects.
pub fn json_objects() -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::vec(json_object(), 0..3)
}

/// A reply's referenced message: absent, deleted (`null`), or a plain message (the server nests
/// one level; generating a whole message here would recurse without end, and every field of a
/// message is generated at the top level anyway).
pub fn referenced_message() -> impl Strategy<Value = Option<Option<Box<crate::models::Message>>>> {
    prop_oneof![
        Just(None),
        Just(Some(None)),
        (any::<Snowflake>(), "[a-z ]{0,12}").prop_map(|(id, content)| {
            let referenced = serde_json::json!({
                "id": id, "channel_id": "1", "author": {"id": "2", "username": "a",
                "discriminator": "0", "global_name": null, "avatar": null},
                "content": content, "timestamp": "2024-01-01T00:00:00.000000+00:00",
                "edited_timestamp": null, "tts": false, "mention_everyone": false,
                "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": false, "type": 0, "flags": 0, "components": []
            });
            serde_json::from_value(referenced)
                .ok()
                .map(|m: crate::models::Message| Some(Box::new(m)))
        }),
    ]
}

/// A short list: the derived default (up to 100 elements, nested several levels deep in a
/// message) would make one generated reply megabytes large.
pub fn few<T: Arbitrary>() -> impl Strategy<Value = Vec<T>> {
    proptest::collection::vec(any::<T>(), 0..4)
}
