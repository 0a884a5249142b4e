//! The `enrichment` node: configuration, the REST API on actix-web, and the wiring of stores,
//! accounts and guild actors. It adapts HTTP to the actors and holds no business rules.
//!
//! [`Node::start`] boots a complete node on the current tokio runtime and returns once it is
//! listening, which is what the binary and the integration tests both use.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use enrichment_actors::accounts::{AccountConfig, AccountService};
use enrichment_actors::auth::{Keyring, PasswordParams};
use enrichment_actors::events::EventBus;
use enrichment_actors::gateway::{GatewayService, Presences, SessionRegistry, SharedGateway};
use enrichment_actors::guild::GuildContext;
use enrichment_actors::router::{GuildRouter, LocalGuildRouter};
use enrichment_actors::users::UserDirectory;
use enrichment_protocol::SnowflakeGenerator;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use enrichment_storage::Stores;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub mod admin;
pub mod attachments;
pub mod backends;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod gateway;
pub mod ids;
mod listen;
mod openapi;
mod ops;
pub mod ratelimit;
mod routes;
mod state;

pub use config::Config;
use state::AppState;

/// One process-wide metrics recorder; several nodes in one process (tests) share it. The
/// install runs inside `get_or_init`, so concurrent starts cannot race to install twice.
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))
}

/// A running node.
pub struct Node {
    /// The bound REST address (useful with port 0).
    pub addr: SocketAddr,
    pub gateway_url: String,
    /// The bound gateway address (useful with port 0).
    pub gateway_addr: SocketAddr,
    /// This node's id (config `node_id`, or generated into `{data_dir}/node-id`).
    pub node_id: String,
    /// The node id with the generation of this process, and the snowflake id pair it mints
    /// with (claimed under a lease on a shared store; see [`ids`]).
    pub ids: ids::NodeIds,
    gateway: Arc<gateway::GatewayServer>,
    server: actix_web::dev::ServerHandle,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    router: Arc<LocalGuildRouter>,
    housekeeping: tokio::task::JoinHandle<()>,
    shared_upkeep: tokio::task::JoinHandle<()>,
    invalidations: tokio::task::JoinHandle<()>,
    /// Stops the guild actors if the id lease is lost.
    lease_watch: tokio::task::JoinHandle<()>,
    /// This node's membership of a cluster (none for a node alone).
    pub cluster: Arc<cluster::NodeCluster>,
    /// The gateway sessions held here.
    sessions: Arc<SessionRegistry>,
    load_upkeep: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the stores, starts the actors and binds the listener.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let started = std::time::Instant::now();
        let node_id = admin::credentials::node_id(&config)?;
        let identity = NodeIdentity::new(node_id.clone(), GenerationId::now());
        let (admin_token, token_source) = admin::credentials::admin_token(&config)?;
        if let admin::credentials::TokenSource::Generated { path, token } = &token_source {
            // Shown once, on the terminal only; later starts read the file silently.
            eprintln!(
                "enrichment: generated an admin token, stored in {} (mode 0600):\n  {token}",
                path.display()
            );
            tracing::info!(path = %path.display(), "generated the admin token");
        }
        let stores: Stores = backends::open_stores(&config).await?;
        // Before anything can mint an id.
        let node_ids =
            ids::NodeIds::acquire(&config, identity.clone(), stores.nodes.clone()).await?;
        let shared = backends::open_shared(&config).await?;
        let blobs = backends::open_blobs(&config).await?;
        // Keys from earlier versions (in data_dir/jwt) are imported into an empty store once.
        let keys = Keyring::open(
            stores.keys.clone(),
            Some(&config.data_dir),
            config.auth.issuer.clone(),
            config.auth.audience.clone(),
        )
        .await
        .context("loading the JWT signing keys from the store")?;
        let metrics = metrics_handle()?;
        let ids = Arc::new(SnowflakeGenerator::for_pair(node_ids.pair));
        let users = UserDirectory::with_limits(stores.users.clone(), config.users.limits());
        let sessions = Arc::new(SessionRegistry::for_node(node_ids.pair.index()));
        // In a cluster, guild work travels between nodes over the transport, and guild actors
        // here deliver to sessions of other nodes through it.
        let links = if config.cluster.enabled {
            Some(
                cluster::Links::bind(&config.cluster, node_ids.identity.clone(), sessions.clone())
                    .await?,
            )
        } else {
            None
        };
        let recipients: Arc<dyn enrichment_actors::guild::RecipientDirectory> = match &links {
            Some(l) => l.directory.clone(),
            None => sessions.clone(),
        };
        let guild_ctx = Arc::new(GuildContext {
            stores: stores.clone(),
            users: users.clone(),
            bus: EventBus::new(config.guilds.event_buffer),
            recipients,
            presences: Arc::new(Presences {
                registry: sessions.clone(),
                shared: shared.clone(),
            }),
            ids: ids.clone(),
            limits: config.guilds.clone(),
            member_chunk_size: config.gateway.member_chunk_size,
            blobs: blobs.clone(),
        });
        let router = LocalGuildRouter::start(guild_ctx.clone(), config.guilds.command_timeout)
            .await
            .context("starting the guild supervisor")?;
        let (guild_router, links) = match links {
            Some(l) => {
                let (routed, serving) = l.start_router(
                    router.clone(),
                    node_ids.pair,
                    stores.leases.clone(),
                    config.guilds.command_timeout,
                    // A dead owner's guilds pass on once the failure detector and its id
                    // lease have both given up on it.
                    config.cluster.dead_after
                        + Duration::from_secs(config.id_lease_secs)
                        + Duration::from_secs(10),
                    // A guild's frames held through its handoff: at most what one link queues.
                    config.cluster.link_queue_bytes,
                );
                (routed, Some(serving))
            }
            None => {
                // A guild actor that restarts takes back the sessions here that followed it
                // (in a cluster, the cluster router's hook adds those handed over to it).
                router.set_start_hook(sessions.clone());
                (router.clone() as Arc<dyn GuildRouter>, None)
            }
        };
        let a = &config.auth;
        let accounts = Arc::new(
            AccountService::new(
                stores,
                users,
                Arc::new(keys),
                ids,
                AccountConfig {
                    access_ttl: Duration::from_secs(a.access_ttl_secs),
                    refresh_ttl: Duration::from_secs(a.refresh_ttl_secs),
                    password: PasswordParams {
                        memory_kib: a.argon2_memory_kib,
                        iterations: a.argon2_iterations,
                        parallelism: a.argon2_lanes,
                    },
                    login_attempts_per_account: a.login_attempts_per_account,
                    login_attempts_per_ip: a.login_attempts_per_ip,
                    login_window: Duration::from_secs(a.login_window_secs),
                    session_cache: Duration::from_secs(a.session_cache_secs),
                },
            )
            .with_shared(shared.clone(), config.redis.key_prefix.clone()),
        );
        let invalidations = accounts.spawn_invalidation_listener();
        let listener = listen::bind(config.listen, config.listen_backlog)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // The gateway binds first so that `GET /gateway` can report the port it really got.
        let gateway_listener = listen::bind(config.gateway_listen, config.listen_backlog)
            .with_context(|| {
                format!("cannot listen for the gateway on {}", config.gateway_listen)
            })?;
        let gateway_addr = gateway_listener.local_addr()?;
        let gateway_url = config
            .gateway_url
            .clone()
            .unwrap_or_else(|| format!("ws://{gateway_addr}"));
        let gateway_svc = Arc::new(
            GatewayService::new(
                config.gateway_settings(gateway_url.clone()),
                sessions,
                accounts.clone(),
                guild_router.clone(),
                guild_ctx.stores.clone(),
            )
            .with_shared(SharedGateway {
                state: shared.clone(),
                prefix: config.redis.key_prefix.clone(),
                node: identity,
                liveness: Default::default(),
            }),
        );
        let shared_upkeep = gateway_svc.spawn_shared_upkeep();
        let gateway = Arc::new(gateway::GatewayServer::start(
            gateway_listener,
            gateway_svc.clone(),
            &config.gateway,
        )?);
        // Gossip starts once the node's addresses are known; the node says it is ready when
        // it serves.
        let cluster = Arc::new(match links {
            Some(links) => {
                cluster::NodeCluster::join(
                    &config.cluster,
                    node_ids.identity.clone(),
                    addr.to_string(),
                    gateway_url.clone(),
                    links,
                )
                .await?
            }
            None => cluster::NodeCluster::alone(),
        });
        cluster.deliver_user_events_to(gateway_svc.clone());
        cluster.take_sessions_over_for(&gateway_svc);
        let held_sessions = gateway_svc.registry.clone();
        let admin_state = web::Data::new(admin::AdminState {
            token: admin_token,
            node_id: node_id.clone(),
            rest_address: addr,
            gateway_url: gateway_url.clone(),
            started,
            started_at: enrichment_protocol::Timestamp::now(),
            gateway: gateway.clone(),
            sessions: gateway_svc.registry.clone(),
            router: guild_router.clone(),
            storage: config.storage.name(),
            blobs: config.blobs.name(),
            shared: shared.clone(),
            keyring: accounts.keyring().clone(),
            identity: node_ids.identity.clone(),
            id_pair: node_ids.pair,
            lease_lost: node_ids.lost_signal(),
            cluster: cluster.clone(),
            leases: guild_ctx.stores.leases.clone(),
        });
        let limits = Arc::new(ratelimit::RateLimits::new(
            &config.rate_limits,
            shared,
            config.redis.key_prefix.clone(),
        ));
        let upkeep = metrics.clone();
        let state = web::Data::new(AppState {
            accounts: accounts.clone(),
            router: guild_router.clone(),
            guilds: guild_ctx,
            metrics,
            gateway_url: gateway_url.clone(),
            gateway: gateway_svc,
            blobs,
            attachments: config.attachments.clone(),
            cluster: cluster.clone(),
        });
        let limits_data = web::Data::new(limits.clone());
        let max_json = config.max_json_bytes;
        let mut server = HttpServer::new(move || {
            let api = |prefix: &str| {
                web::scope(prefix)
                    .wrap(from_fn(ratelimit::enforce))
                    .service(ops::openapi)
                    .configure(routes::configure)
            };
            App::new()
                .app_data(state.clone())
                .app_data(admin_state.clone())
                .app_data(limits_data.clone())
                .app_data(error::BodyLimit(max_json))
                .app_data(web::PayloadConfig::new(max_json))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .wrap(from_fn(ops::observe))
                .service(ops::healthz)
                .service(ops::readyz)
                .service(ops::prometheus)
                .configure(admin::configure)
                .route(
                    "/attachments/{channel_id}/{attachment_id}/{filename}",
                    web::get().to(attachments::serve::serve),
                )
                .route("/emojis/{file}", web::get().to(routes::emojis::image))
                .service(api("/api/v10"))
                .service(api("/api/v9"))
                .service(api("/api"))
                .default_service(web::to(ops::not_found))
        })
        .listen(listener)?
        // Signals are handled by `Node::wait`, which drains the gateway before HTTP stops.
        .disable_signals()
        .shutdown_timeout(10);
        if config.http_workers > 0 {
            server = server.workers(config.http_workers);
        }
        let server = server.run();
        let handle = server.handle();
        let serving = tokio::spawn(server);
        let housekeeping = tokio::spawn(async move {
            // The recorder keeps every histogram sample (each request, store call and gateway
            // flush) until upkeep folds them into the buckets; without it they pile up for as
            // long as nobody scrapes /metrics. Every 5 s, as the exporter's own upkeep task does.
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            for n in 0u64.. {
                tick.tick().await;
                upkeep.run_upkeep();
                if n % 12 == 0 {
                    accounts.housekeep();
                    // Another node may have rotated the signing key.
                    if let Err(e) = accounts.keyring().reload().await {
                        tracing::warn!(error = %e, "cannot reload the JWT keys");
                    }
                }
            }
        });
        // Every message id is minted in a guild actor: without the lease, none may run.
        let lease_watch = {
            let lost = node_ids.lost_signal();
            let router = router.clone();
            tokio::spawn(async move {
                lost.wait().await;
                router.stop();
            })
        };
        let load_upkeep = cluster.spawn_load_upkeep(guild_router.clone(), gateway.clone());
        cluster.ready().await;
        tracing::info!(
            %node_id,
            generation = %node_ids.identity.generation,
            id_pair = %node_ids.pair,
            %addr,
            %gateway_url,
            "enrichment node listening"
        );
        Ok(Node {
            node_id,
            ids: node_ids,
            lease_watch,
            addr,
            gateway_url,
            gateway_addr,
            gateway,
            server: handle,
            serving,
            router,
            housekeeping,
            shared_upkeep,
            invalidations,
            cluster,
            sessions: held_sessions,
            load_upkeep,
        })
    }

    /// Base URL of the REST API, e.g. `http://127.0.0.1:8080/api/v10`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// Base URL of the admin API, e.g. `http://127.0.0.1:8080/admin/v1`.
    pub fn admin_url(&self) -> String {
        format!(
            "http://{}{}",
            self.addr,
            enrichment_protocol::admin::ADMIN_PREFIX
        )
    }

    /// Gateway connections open now.
    pub fn gateway_connections(&self) -> usize {
        self.gateway.connections()
    }

    /// Sends RECONNECT to every gateway connection and closes them, stops accepting, finishes
    /// in-flight requests, stops the actors.
    pub async fn stop(self) {
        self.cluster.drain().await;
        self.gateway.drain(Duration::from_secs(5)).await;
        // Its clients resume on other nodes, which take their sessions from here.
        self.cluster.sessions_taken_over(&self.sessions).await;
        // Requests keep being served (and sent on to the guilds' next owners) meanwhile.
        self.cluster.handed_off(Duration::from_secs(10)).await;
        self.server.stop(true).await;
        let _ = self.serving.await;
        self.housekeeping.abort();
        self.shared_upkeep.abort();
        self.invalidations.abort();
        self.router.stop();
        self.lease_watch.abort();
        // Give actors a moment to drain their commit queues before the stores drop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(task) = &self.load_upkeep {
            task.abort();
        }
        self.cluster.leave().await;
        // Nothing mints any more: other nodes may have the pair.
        self.ids.release().await;
    }

    /// Runs until SIGINT or SIGTERM, then drains: gateway clients get RECONNECT (op 7) and a
    /// resumable close, in-flight HTTP requests finish, actors stop. Fails, after the same
    /// drain, when the node lost its snowflake id lease (see [`ids`]), so that the process
    /// exits and its supervisor starts it again with a fresh claim.
    pub async fn wait(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let lost = self.ids.lost_signal();
        let lost = tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: draining"); None }
            _ = int.recv() => { tracing::info!("SIGINT: draining"); None }
            _ = self.cluster.drain_requested() => { tracing::info!("drain requested: draining"); None }
            why = lost.wait() => Some(why),
        };
        self.stop().await;
        match lost {
            None => Ok(()),
            Some(why) => Err(anyhow::anyhow!(
                "{why}; the node stopped so that it can be started again with a fresh claim"
            )),
        }
    }
}
