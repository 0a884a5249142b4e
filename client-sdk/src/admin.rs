//! The operators' admin API under `/admin/v1`: cluster status, the hash ring, draining a node,
//! the JWT signing keys.
//!
//! It is authenticated with the cluster's admin token (`Authorization: Bearer <token>`), never
//! with a user or bot token, and is not rate limited like the bot API, so calls go out once,
//! without the REST client's buckets and retries: an operator wants the answer, or the error,
//! now. Answers are the `enrichment_protocol::admin` types the node serves.

use enrichment_protocol::Snowflake;
use enrichment_protocol::admin::{
    ADMIN_PREFIX, ClusterRing, ClusterStatus, NodeInfo, RingQuery, SigningKeys,
};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, USER_AGENT};
use serde::de::DeserializeOwned;

use crate::client::{api_error, decode, segment};
use crate::error::{Error, Result};

/// A client for one server's admin API; made by [`Client::admin`](crate::Client::admin).
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
    user_agent: String,
}

impl std::fmt::Debug for AdminClient {
    // The token is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    pub(crate) fn new(
        http: reqwest::Client,
        root: &str,
        token: String,
        user_agent: String,
    ) -> AdminClient {
        AdminClient {
            http,
            base: format!("{root}{ADMIN_PREFIX}"),
            token,
            user_agent,
        }
    }

    /// `GET /admin/v1/cluster/status`: every node with its state and gauges.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        self.call(Method::GET, "/cluster/status", None).await
    }

    /// `GET /admin/v1/cluster/ring`: the ring's members, and with `guild_id` the node that
    /// owns that guild (in [`ClusterRing::owner`]).
    pub async fn cluster_ring(&self, guild_id: Option<Snowflake>) -> Result<ClusterRing> {
        self.call(Method::GET, "/cluster/ring", Some(RingQuery { guild_id }))
            .await
    }

    /// `POST /admin/v1/cluster/nodes/{node_id}/drain`: the node tells its gateway clients to
    /// reconnect elsewhere and takes no new ones. Answers the node as it is now (`draining`).
    pub async fn drain_node(&self, node_id: &str) -> Result<NodeInfo> {
        let path = format!("/cluster/nodes/{}/drain", segment(node_id));
        self.call(Method::POST, &path, None).await
    }

    /// `POST /admin/v1/guilds/{guild_id}/reload`: the guild's actor on this node (its owner)
    /// reloads the guild from storage, keeping the sessions that follow it, as after a crash.
    /// Not found when the guild's actor does not run on this node.
    pub async fn reload_guild(&self, guild_id: Snowflake) -> Result<()> {
        let path = format!("/guilds/{guild_id}/reload");
        self.call(Method::POST, &path, None).await
    }

    /// `GET /admin/v1/keys`: the ids of the JWT signing keys every node shares, and the one
    /// new tokens are signed with (never the key material).
    pub async fn signing_keys(&self) -> Result<SigningKeys> {
        self.call(Method::GET, "/keys", None).await
    }

    /// `POST /admin/v1/keys/rotate`: a new key signs from now on; tokens signed with the
    /// previous keys still verify until they expire. Every node picks the new key up within
    /// a minute, and at once when it meets a token signed with it.
    pub async fn rotate_signing_key(&self) -> Result<SigningKeys> {
        self.call(Method::POST, "/keys/rotate", None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<RingQuery>,
    ) -> Result<T> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(USER_AGENT, &self.user_agent);
        if let Some(q) = query.filter(|q| q.guild_id.is_some()) {
            req = req.query(&q);
        }
        let res = req.send().await.map_err(Error::Http)?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(Error::Http)?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        decode(status, &bytes)
    }
}
