//! The guild protocol crosses the wire between nodes as MessagePack with named fields: every
//! request, reply, error and session op must come back from that trip exactly as it left.

use std::collections::BTreeSet;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> T {
    let bytes = rmp_serde::to_vec_named(value).expect("serializes");
    rmp_serde::from_slice(&bytes).unwrap_or_else(|e| panic!("{value:?} does not read back: {e}"))
}

/// Runs `cases` generated values through MessagePack, checking each comes back equal, and
/// returns the names `name` gives them (to check every variant was generated).
fn check_all<T>(cases: u32, name: fn(&T) -> &'static str) -> BTreeSet<&'static str>
where
    T: Arbitrary + Serialize + DeserializeOwned + PartialEq + Debug + 'static,
{
    // The strategies for a whole guild reply nest deeply: a debug build needs more than a test
    // thread's default stack to build them.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            // A fixed seed: the same values every run, so the check that every variant was
            // generated cannot fail by chance.
            let mut runner = TestRunner::new_with_rng(
                Config {
                    cases,
                    // A failing value is large; a few shrinking steps name the field, more only
                    // take time.
                    max_shrink_iters: 64,
                    ..Config::default()
                },
                TestRng::deterministic_rng(RngAlgorithm::ChaCha),
            );
            let seen = std::cell::RefCell::new(BTreeSet::new());
            let result = runner.run(&any::<T>(), |value| {
                seen.borrow_mut().insert(name(&value));
                prop_assert_eq!(round_trip(&value), value);
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
            seen.into_inner()
        })
        .expect("spawn the property test thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn every_request_survives_messagepack_with_named_fields() {
    let seen = check_all::<Envelope>(1024, |e| e.request.name());
    let all: BTreeSet<_> = AnyRequest::NAMES.iter().copied().collect();
    assert_eq!(seen, all, "every request was generated");
}

#[test]
fn every_reply_survives_messagepack_with_named_fields() {
    let seen = check_all::<AnyReply>(1024, AnyReply::name);
    let all: BTreeSet<_> = AnyRequest::NAMES.iter().copied().collect();
    assert_eq!(seen, all, "every reply was generated");
}

#[test]
fn errors_survive_messagepack_with_named_fields() {
    check_all::<Result<AnyReply, ApiError>>(512, |r| match r {
        Ok(_) => "ok",
        Err(_) => "error",
    });
}

#[test]
fn every_session_op_survives_messagepack_with_named_fields() {
    let seen = check_all::<SessionOp>(512, SessionOp::name);
    assert_eq!(seen.len(), 7, "{seen:?}");
}

#[test]
fn a_request_is_a_map_of_named_fields() {
    let envelope = Envelope {
        caller: Caller::new(Snowflake(7)),
        request: GetChannel {
            channel_id: Snowflake(42),
        }
        .into_any(),
    };
    let bytes = rmp_serde::to_vec_named(&envelope).unwrap();
    let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "caller": {"actor": "7", "reason": null},
            "request": {"GetChannel": {"channel_id": "42"}}
        })
    );
}

#[test]
fn a_reply_names_its_request_and_converts_back_only_to_its_own_type() {
    let reply = GetChannel::reply_into_any(channel());
    assert_eq!(reply.name(), "GetChannel");
    assert!(DeleteChannel::reply_from_any(reply.clone()).is_none());
    assert_eq!(GetChannel::reply_from_any(reply), Some(channel()));
}

fn channel() -> Channel {
    use proptest::strategy::ValueTree;
    any::<Channel>()
        .new_tree(&mut TestRunner::deterministic())
        .unwrap()
        .current()
}
