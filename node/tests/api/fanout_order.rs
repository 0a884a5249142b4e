//! Per-channel order under concurrent events, as a property. Whatever the mix of channels,
//! sessions (several per user included) and posters sending at once, every session receives
//! every acknowledged message of every channel exactly once, in the order the guild committed
//! them — the order of their ids, so the same at every session — with no gap in its sequence
//! numbers (`Gw` checks each frame's `s`).

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use crate::gw::Gw;
use crate::support::{TestNode, User, id_of};

/// One case: how many channels and users, which user each session is, and what each
/// concurrent poster sends (author, channel), in order.
#[derive(Clone, Debug)]
struct Plan {
    channels: usize,
    users: usize,
    sessions: Vec<usize>,
    posters: Vec<Vec<(usize, usize)>>,
}

fn plan() -> impl Strategy<Value = Plan> {
    (1usize..=3, 1usize..=3)
        .prop_flat_map(|(channels, users)| {
            (
                Just(channels),
                Just(users),
                prop::collection::vec(0..users, 1..=4),
                prop::collection::vec(prop::collection::vec((0..users, 0..channels), 1..=8), 2..=4),
            )
        })
        .prop_map(|(channels, users, sessions, posters)| Plan {
            channels,
            users,
            sessions,
            posters,
        })
}

async fn run(plan: Plan) {
    let node = TestNode::start().await;
    let mut users: Vec<User> = Vec::new();
    for u in 0..plan.users {
        users.push(node.register(&format!("order{u}")).await);
    }
    let (guild, general) = node.guild(&users[0], "order").await;
    let mut channels = vec![general.clone()];
    for c in 1..plan.channels {
        let ch = node
            .post(
                &format!("/guilds/{guild}/channels"),
                &users[0].token,
                json!({"name": format!("c{c}"), "type": 0}),
            )
            .await
            .ok(201);
        channels.push(id_of(&ch));
    }
    for u in &users[1..] {
        node.join(&users[0], &general, u).await;
    }
    let mut sessions = Vec::new();
    for &u in &plan.sessions {
        sessions.push(Gw::joined(&node, "v=10&encoding=json", &users[u].token, &guild).await);
    }

    // Every poster sends its messages one after another; the posters run at once.
    let posters = plan.posters.iter().enumerate().map(|(p, sends)| {
        let (node, users, channels) = (&node, &users, &channels);
        async move {
            let mut acked = Vec::new();
            for (n, &(author, channel)) in sends.iter().enumerate() {
                let m = node
                    .send(&users[author], &channels[channel], &format!("p{p} n{n}"))
                    .await;
                acked.push((channel, id_of(&m).parse::<u64>().unwrap()));
            }
            acked
        }
    });
    let mut want: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (channel, id) in futures::future::join_all(posters)
        .await
        .into_iter()
        .flatten()
    {
        want.entry(channels[channel].clone()).or_default().push(id);
    }
    for ids in want.values_mut() {
        ids.sort_unstable();
    }
    let total: usize = want.values().map(Vec::len).sum();

    for (s, gw) in sessions.iter_mut().enumerate() {
        let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut n = 0;
        while n < total {
            let (t, d) = tokio::time::timeout(Duration::from_secs(15), gw.next_event())
                .await
                .unwrap_or_else(|_| panic!("session {s}: {n} of {total} messages in 15 s"));
            if t == "MESSAGE_CREATE" {
                let channel = d["channel_id"].as_str().unwrap().to_owned();
                got.entry(channel)
                    .or_default()
                    .push(id_of(&d).parse().unwrap());
                n += 1;
            }
        }
        assert_eq!(got, want, "session {s} of {plan:?}");
        gw.expect_quiet(Duration::from_millis(200)).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_session_gets_every_channels_messages_once_in_commit_order(plan in plan()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(plan));
    }
}
