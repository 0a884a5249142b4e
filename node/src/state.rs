//! What every request handler shares, and the extractors that authenticate callers.

use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, web};
use enrichment_actors::accounts::{AccountService, Principal};
use enrichment_actors::guild::{Caller, GuildContext, Request};
use enrichment_actors::router::GuildRouter;
use enrichment_protocol::{ApiError, ErrorCode, Snowflake};
use enrichment_storage::blobs::BlobStore;
use futures::future::LocalBoxFuture;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::AttachmentConfig;
use crate::error::HttpError;

/// Shared by all handlers (behind `web::Data`).
pub struct AppState {
    pub accounts: Arc<AccountService>,
    pub router: Arc<dyn GuildRouter>,
    pub guilds: Arc<GuildContext>,
    pub metrics: PrometheusHandle,
    pub gateway_url: String,
    pub gateway: Arc<enrichment_actors::gateway::GatewayService>,
    /// Attachment bytes.
    pub blobs: Arc<dyn BlobStore>,
    pub attachments: AttachmentConfig,
    /// The cluster this node is in, if any: per-user events go to its other nodes too.
    pub cluster: Arc<crate::cluster::NodeCluster>,
}

impl AppState {
    /// A user joined a guild: their gateway sessions, here and on every other node, follow it
    /// (GUILD_CREATE). Those here have it before this returns.
    pub async fn joined_guild(&self, user_id: Snowflake, guild_id: Snowflake) {
        self.cluster.user_joined(user_id, guild_id, false);
        self.gateway.joined_guild(user_id, guild_id).await;
    }

    /// A user is in a new private channel: their gateway sessions, here and on every other
    /// node, follow it. Those here do before this returns.
    pub async fn joined_private(&self, user_id: Snowflake, channel_id: Snowflake) {
        self.cluster.user_joined(user_id, channel_id, true);
        self.gateway.joined_private(user_id, channel_id).await;
    }

    /// USER_UPDATE to the user's gateway sessions, here and on every other node.
    pub fn user_updated(&self, user: &enrichment_protocol::models::User) {
        self.cluster.user_updated(user);
        self.gateway.user_updated(user);
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("gateway_url", &self.gateway_url)
            .finish_non_exhaustive()
    }
}

pub type State = web::Data<AppState>;

impl AppState {
    /// Sends a request to a guild on behalf of `who`; answers with the request's reply.
    /// Sends a request to a guild as the caller, with the reason its request gave for the
    /// audit log.
    pub async fn guild<R: Request>(
        &self,
        guild_id: Snowflake,
        who: &Authed,
        request: R,
    ) -> Result<R::Reply, HttpError> {
        let caller = Caller {
            actor: who.0.user_id,
            reason: who.1.clone(),
        };
        Ok(self.router.request(guild_id, caller, request).await?)
    }

    /// Sends a request that a webhook's token authorizes: no user acts in it.
    pub async fn guild_by_token<R: Request>(
        &self,
        guild_id: Snowflake,
        reason: Option<String>,
        request: R,
    ) -> Result<R::Reply, HttpError> {
        let caller = Caller {
            actor: Snowflake(0),
            reason,
        };
        Ok(self.router.request(guild_id, caller, request).await?)
    }

    /// Sends a request to the guild that owns `channel_id`.
    pub async fn channel<R: Request>(
        &self,
        channel_id: Snowflake,
        who: &Authed,
        request: R,
    ) -> Result<R::Reply, HttpError> {
        let guild_id = self.router.guild_of_channel(channel_id).await?;
        // A channel whose guild is gone is an unknown channel, whether or not its mapping was
        // still cached.
        match self.guild(guild_id, who, request).await {
            Err(HttpError(e)) if e.code() == ErrorCode::UnknownGuild.as_u32() => {
                Err(ApiError::unknown(ErrorCode::UnknownChannel).into())
            }
            other => other,
        }
    }
}

/// An authenticated caller, and the reason its request gives for the audit log
/// (`X-Audit-Log-Reason`, which Discord accepts on every route that changes something).
#[derive(Debug, Clone)]
pub struct Authed(pub Principal, pub Option<String>);

impl FromRequest for Authed {
    type Error = HttpError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<State>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reason = audit_reason(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| HttpError(ApiError::internal()))?;
            let header = header.ok_or_else(|| HttpError(ApiError::unauthorized()))?;
            let who = state.accounts.authenticate(&header).await?;
            tracing::Span::current().record("user_id", tracing::field::display(who.user_id));
            Ok(Authed(who, reason))
        })
    }
}

/// The client's IP as seen by this node (for login throttling).
pub fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `X-Audit-Log-Reason`, percent-decoded as Discord clients send it.
pub fn audit_reason(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get("X-Audit-Log-Reason")?.to_str().ok()?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    Some(decoded.chars().take(512).collect())
}
