//! The admin API through `Client::admin`: status, ring lookup, drain, and the errors an
//! operator sees with a wrong token or an unknown node.

use enrichment_client::Error;
use enrichment_client::gateway::{Event, Gateway, GatewayOptions};
use enrichment_client::protocol::Snowflake;
use enrichment_client::protocol::admin::NodeStatus;
use enrichment_node::config::Secret;

use crate::support::TestNode;

const ADMIN_TOKEN: &str = "sdk-admin-token-0123";

#[tokio::test]
async fn admin_client_reads_status_and_ring_and_drains() {
    let t = TestNode::start_with(|c| c.admin_token = Some(Secret::new(ADMIN_TOKEN))).await;
    let alice = t.user("alice").await;
    let (guild, _) = t.guild(&alice, "ops").await;
    let mut gw = Gateway::connect(&alice, GatewayOptions::default())
        .await
        .expect("gateway");
    assert!(matches!(gw.next_event().await, Some(Ok(Event::Ready(_)))));

    let admin = t.anon.admin(ADMIN_TOKEN);
    let status = admin.cluster_status().await.expect("status");
    let node = &status.nodes[0];
    assert_eq!(node.status, NodeStatus::Healthy);
    assert_eq!(node.gateway_connections, 1);
    assert_eq!(node.sessions, 1);

    let ring = admin.cluster_ring(None).await.expect("ring");
    assert!(ring.owner.is_none());
    assert_eq!(ring.nodes[0].id, node.id);
    let ring = admin.cluster_ring(Some(guild)).await.expect("ring lookup");
    let owner = ring.owner.expect("owner");
    assert_eq!(
        (owner.guild_id, owner.node_id.as_str()),
        (guild, node.id.as_str())
    );

    match admin.drain_node("no-such-node").await {
        Err(Error::Api { status: 404, .. }) => {}
        other => panic!("expected a 404, got {other:?}"),
    }
    let drained = admin.drain_node(&node.id).await.expect("drain");
    assert_eq!(drained.status, NodeStatus::Draining);

    // A user's token does not open the admin API.
    let token = alice.token().expect("token").secret().to_owned();
    match t.anon.admin(token).cluster_ring(Some(Snowflake(1))).await {
        Err(e) => assert!(e.is_unauthorized(), "{e:?}"),
        Ok(ring) => panic!("a user token read the ring: {ring:?}"),
    }
    drop(gw);
}
