//! The baseline load generator (`enrichment-baseline-load`): the gateway measurements, redone
//! against two Node.js servers that do the same room broadcast (`bench/baselines/`), so the
//! node can be compared with them in one run on one machine (`bench/run-baselines.sh`).
//!
//! - **Socket.IO 4 with its Redis adapter** (`bench/baselines/socketio`): the client speaks
//!   engine.io 4 / Socket.IO 4 over the websocket transport itself ([`wire`]).
//! - **`ws`** (`bench/baselines/ws`): plain WebSocket, one JSON text frame per message.
//!
//! Both take a room in the connection's query and broadcast the JSON body of
//! `POST /rooms/ROOM/messages` to it. The modes mirror the gateway generator's, with the same
//! methodology and many of the same parts (the [`Gate`](crate::gateway::client::Gate)
//! counters, the phased opening of connections, the latency mark, histograms and arrival check,
//! the open-loop [`Pacing`](crate::run::Pacing), `/proc` sampling):
//!
//! - **idle**: N connections in rooms; the server's RSS per connection ([`modes::idle`]).
//! - **fanout**: S connections in one room, bursts of K posts at once; deliveries per second
//!   counted at the receivers and server CPU per delivery ([`modes::fanout`]).
//! - **latency**: G rooms × M members, an open-loop message rate; every message carries its
//!   scheduled send time, every receiver records now − that time, and every connection's
//!   messages are checked against what its room was sent ([`modes::latency`]).
//! - **sweep**: latency steps at rising rates ([`sweep::Sweep`]) on the same connections; the
//!   figure is the highest deliveries per second whose p99 stays within the bound. The same
//!   rule sweeps the node by running `enrichment-gateway-load latency --json` once per rate
//!   (`sweep-command`).

pub mod conn;
pub mod modes;
pub mod sweep;
pub mod wire;
