//! The gateway load generator (`enrichment-gateway-load`): many WebSocket sessions against one
//! node or a cluster, in four modes.
//!
//! - **idle**: N identified JSON connections, all in one guild, that only heartbeat. Reports the
//!   identify rate and the server's resident memory per connection (RSS read from
//!   `/proc/PID/status` before any connection, at N/2 and at N, after a burst of messages).
//! - **fanout**: S sessions in one guild with one text channel. Bursts of K concurrently posted
//!   messages give deliveries per second from the first send to the last delivery; then events
//!   one at a time give the per-event completion time. Server and generator CPU (from
//!   `/proc/PID/stat`) are reported per delivery.
//! - **latency**: G guilds of M members, an open-loop message rate spread over the guilds; each
//!   message carries its scheduled send time and index, each receiver records the delivery
//!   latency, and at the end every session's messages are checked against what its guild was
//!   sent: none lost, none extra, and the same order at every session of the guild
//!   ([`modes::check_arrivals`]). `--json` prints the result ([`modes::LatencyReport`]).
//!
//! - **scenario** ([`leader`], [`worker`], [`scenario`]): a latency run from a scenario file,
//!   its sessions spread over several worker processes (one process may hold 20,000 sockets
//!   here), with an optional storm of dropped-and-resumed sessions and slow consumers that
//!   stop reading. The leader sets up, posts, samples server and generator CPU and RSS from
//!   `/proc` every second, shows a progress line, and merges what the workers hand in
//!   ([`wire`]) into `result.json`, `summary.md` and SVG plots ([`plot`]).
//!
//! Setup (users, guilds, invites, joins) goes through REST with bounded concurrency. The server
//! must run with `--no-rate-limits` and IDENTIFY limits raised (see `bench/gateway-bench.toml`).
//!
//! Receivers count frames by their first bytes rather than parsing JSON (see [`client::peek`]),
//! so that the generator, which shares the machine with the server, stays cheap.

pub mod client;
pub mod fleet;
pub mod leader;
pub mod modes;
pub mod plot;
pub mod posting;
pub mod procfs;
pub mod scenario;
pub mod wire;
pub mod worker;
pub mod world;
