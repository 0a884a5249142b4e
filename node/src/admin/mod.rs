//! The operators' admin API under `/admin/v1`, on the REST listener but outside `/api/v10`:
//! no bot rate limits, and only the admin token opens it (`Authorization: Bearer <token>`).
//! User and bot tokens are refused like any other wrong token: 401 with Discord's body and no
//! data, for every path under the prefix, before the path is even matched.
//!
//! - `GET /cluster/status`: every node (one today) with its gauges, its generation and the
//!   snowflake id pair it mints with;
//! - `GET /cluster/ring[?guild_id=X]`: the ring, and the owner of guild X when asked;
//! - `GET /keys`, `POST /keys/rotate`: the JWT signing keys (ids only); rotation signs new
//!   tokens with a fresh key, older tokens keep verifying, other nodes follow on their own;
//! - `POST /cluster/nodes/{node_id}/drain`: the node tells its gateway clients to reconnect
//!   (op 7, then close 4000) and refuses new gateway connections; `/readyz` turns 503.
//! - `POST /guilds/{guild_id}/reload`: the guild's actor on this node (its owner; see
//!   `/cluster/ring?guild_id=`) reloads the guild from storage and keeps its followers, as after
//!   a crash: the way to pick up a change made to storage behind it. 404 when it does not run
//!   here.
//!
//! The wire types live in `enrichment_protocol::admin`, shared with the SDK.

pub mod credentials;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, get, post, web};
use enrichment_actors::auth::Keyring;
use enrichment_actors::gateway::SessionRegistry;
use enrichment_actors::router::GuildRouter;
use enrichment_protocol::admin::{
    ADMIN_PREFIX, ClusterRing, ClusterStatus, GuildLease, GuildOwner, NodeInfo, NodeStatus,
    RingNode, RingQuery, SigningKeys,
};
use enrichment_protocol::node::NodeIdentity;
use enrichment_protocol::{ApiError, ErrorCode, IdPair, Snowflake, Timestamp};
use enrichment_storage::shared::SharedState;

pub use credentials::AdminToken;

use enrichment_cluster::{Member, MemberState};
use enrichment_storage::LeaseStore;

use crate::cluster::NodeCluster;
use crate::error::{ApiResult, HttpError};
use crate::gateway::GatewayServer;
use crate::ids::LeaseLost;

/// What the admin routes read and act on.
pub struct AdminState {
    pub token: AdminToken,
    pub node_id: String,
    pub rest_address: SocketAddr,
    pub gateway_url: String,
    pub started: Instant,
    pub started_at: Timestamp,
    pub gateway: Arc<GatewayServer>,
    pub sessions: Arc<SessionRegistry>,
    pub router: Arc<dyn GuildRouter>,
    pub storage: &'static str,
    pub blobs: &'static str,
    pub shared: Arc<dyn SharedState>,
    pub keyring: Arc<Keyring>,
    /// The node id with this process's generation.
    pub identity: NodeIdentity,
    /// The snowflake worker and process ids the node mints with.
    pub id_pair: IdPair,
    /// Set once the node lost the lease on `id_pair` (it is then stopping).
    pub lease_lost: LeaseLost,
    /// The cluster this node is a member of, if any.
    pub cluster: Arc<NodeCluster>,
    /// Who holds each guild's lease.
    pub leases: Arc<dyn LeaseStore>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl AdminState {
    pub fn status(&self) -> NodeStatus {
        if self.gateway.is_draining() {
            NodeStatus::Draining
        } else {
            NodeStatus::Healthy
        }
    }

    /// This node, as the admin API reports it.
    pub fn node_info(&self) -> NodeInfo {
        NodeInfo {
            id: self.node_id.clone(),
            rest_address: self.rest_address.to_string(),
            gateway_url: self.gateway_url.clone(),
            status: self.status(),
            started_at: self.started_at,
            uptime_secs: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            gateway_connections: self.gateway.connections() as u64,
            sessions: self.sessions.len() as u64,
            guild_actors: self.router.local_actor_count() as u64,
            storage: self.storage.to_owned(),
            blobs: self.blobs.to_owned(),
            shared_state: self.shared.health().as_str().to_owned(),
            generation: self.identity.generation,
            id_pair: self.id_pair,
        }
    }

    /// Another member, as far as gossip tells: what only that node knows (its sessions, its
    /// version, its backends, its id pair) is left empty; its own admin API has it.
    fn member_info(member: &Member) -> NodeInfo {
        let generation = member.identity.generation;
        // A generation is its process's start time in Unix ms.
        let started_at = Timestamp::from_unix_ms(generation.0);
        NodeInfo {
            id: member.node_id().to_owned(),
            rest_address: member.rest_addr.clone(),
            gateway_url: member.gateway_url.clone(),
            status: member_status(member.state),
            started_at,
            uptime_secs: Timestamp::now()
                .unix_ms()
                .saturating_sub(started_at.unix_ms())
                .max(0) as u64
                / 1000,
            version: String::new(),
            gateway_connections: member.load.connections,
            sessions: 0,
            guild_actors: member.load.guild_actors,
            storage: String::new(),
            blobs: String::new(),
            shared_state: String::new(),
            generation,
            id_pair: IdPair::default(),
        }
    }

    fn ring_node(&self) -> RingNode {
        RingNode {
            id: self.node_id.clone(),
            rest_address: self.rest_address.to_string(),
            gateway_url: self.gateway_url.clone(),
            status: self.status(),
        }
    }
}

fn member_status(state: MemberState) -> NodeStatus {
    match state {
        MemberState::Joining => NodeStatus::Joining,
        MemberState::Ready => NodeStatus::Healthy,
        MemberState::Draining | MemberState::Left => NodeStatus::Draining,
    }
}

type Admin = web::Data<AdminState>;

/// Mounts the admin scope, guarded by the token check.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(ADMIN_PREFIX)
            .wrap(from_fn(authenticate))
            .service(cluster_status)
            .service(cluster_ring)
            .service(drain_node)
            .service(reload_guild)
            .service(signing_keys)
            .service(rotate_keys),
    );
}

/// 401 unless the request carries `Authorization: Bearer <admin token>`.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let allowed = match (req.app_data::<Admin>(), presented) {
        (Some(admin), Some(token)) => admin.token.matches(token),
        _ => false,
    };
    if !allowed {
        tracing::debug!(path = %req.path(), "admin request without a valid admin token");
        let body = ApiError::new(401, ErrorCode::General, "401: Unauthorized").body;
        let res = HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .json(body);
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[get("/cluster/status")]
async fn cluster_status(admin: Admin) -> HttpResponse {
    let mut nodes = vec![admin.node_info()];
    if let Some(view) = admin.cluster.view() {
        nodes.extend(
            view.members
                .iter()
                .filter(|m| m.node_id() != admin.node_id)
                .map(AdminState::member_info),
        );
    }
    HttpResponse::Ok().json(ClusterStatus { nodes })
}

/// The guild's lease as the store has it; `None` when nobody holds it (or the store cannot
/// say, which is logged).
async fn lease_of(admin: &AdminState, guild_id: Snowflake) -> Option<GuildLease> {
    match admin.leases.guild_owner(guild_id).await {
        Ok(owner) => owner.map(|o| GuildLease {
            node_id: o.node.node_id,
            generation: o.node.generation,
            epoch: o.epoch,
        }),
        Err(e) => {
            tracing::warn!(%guild_id, error = %e, "cannot read a guild's lease");
            None
        }
    }
}

#[get("/cluster/ring")]
async fn cluster_ring(admin: Admin, query: web::Query<RingQuery>) -> HttpResponse {
    let Some(view) = admin.cluster.view() else {
        // A node alone owns every guild, and claims none.
        let owner = query.guild_id.map(|guild_id| GuildOwner {
            guild_id,
            node_id: admin.node_id.clone(),
            lease: None,
        });
        return HttpResponse::Ok().json(ClusterRing {
            epoch: 0,
            nodes: vec![admin.ring_node()],
            owner,
        });
    };
    let mut owner = query.guild_id.and_then(|guild_id| {
        view.owner(guild_id.get()).map(|m| GuildOwner {
            guild_id,
            node_id: m.node_id().to_owned(),
            lease: None,
        })
    });
    if let Some(o) = owner.as_mut() {
        o.lease = lease_of(&admin, o.guild_id).await;
    }
    let nodes = view
        .ready
        .iter()
        .map(|m| RingNode {
            id: m.node_id().to_owned(),
            rest_address: m.rest_addr.clone(),
            gateway_url: m.gateway_url.clone(),
            status: member_status(m.state),
        })
        .collect();
    HttpResponse::Ok().json(ClusterRing {
        epoch: view.epoch,
        nodes,
        owner,
    })
}

#[post("/cluster/nodes/{node_id}/drain")]
async fn drain_node(admin: Admin, node_id: web::Path<String>) -> ApiResult<HttpResponse> {
    if *node_id != admin.node_id {
        // Another member is told over the cluster's own links, which the cluster secret
        // authenticates; it drains and stops as if asked directly.
        if let Some(member) = admin
            .cluster
            .view()
            .and_then(|v| v.member(&node_id).cloned())
        {
            tracing::warn!(%node_id, "passing a drain request on to another node");
            admin
                .cluster
                .request_drain_of(&node_id)
                .map_err(HttpError)?;
            return Ok(HttpResponse::Accepted().json(AdminState::member_info(&member)));
        }
        return Err(HttpError(ApiError::new(
            404,
            ErrorCode::General,
            "Unknown Node",
        )));
    }
    if !admin.gateway.is_draining() {
        tracing::warn!(node_id = %admin.node_id, connections = admin.gateway.connections(), "draining the gateway on admin request");
        admin.cluster.drain().await;
        admin.gateway.start_draining();
        // In a cluster the node also hands its guilds on and stops; alone it keeps serving REST.
        admin.cluster.request_drain();
    }
    Ok(HttpResponse::Ok().json(admin.node_info()))
}

#[post("/guilds/{guild_id}/reload")]
async fn reload_guild(admin: Admin, guild_id: web::Path<u64>) -> ApiResult<HttpResponse> {
    let guild_id = Snowflake(guild_id.into_inner());
    if admin.router.reload_here(guild_id) {
        tracing::warn!(%guild_id, "reloading a guild's actor on admin request");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(HttpError(ApiError::new(
            404,
            ErrorCode::UnknownGuild,
            "The guild's actor does not run on this node",
        )))
    }
}

fn key_list(keyring: &Keyring) -> SigningKeys {
    let keys = keyring.keys();
    SigningKeys {
        current_kid: keys.current_kid().to_owned(),
        kids: keys.kids(),
    }
}

#[get("/keys")]
async fn signing_keys(admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(key_list(&admin.keyring))
}

#[post("/keys/rotate")]
async fn rotate_keys(admin: Admin) -> ApiResult<HttpResponse> {
    let kid = admin.keyring.rotate().await.map_err(|e| {
        tracing::error!(error = %e, "JWT key rotation failed");
        HttpError(ApiError::internal())
    })?;
    tracing::warn!(%kid, "JWT signing key rotated on admin request");
    Ok(HttpResponse::Ok().json(key_list(&admin.keyring)))
}
