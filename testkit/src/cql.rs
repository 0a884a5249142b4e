//! An in-memory CQL v4 server (the `kassandra` crate) on an ephemeral port, for wire-level
//! smoke tests of the ScyllaDB store: it proves the driver connects, the schema DDL parses
//! and every statement prepares and binds. Its query semantics are incomplete (clustering
//! ranges, ORDER BY, LWT and TTL are not honoured), so it proves nothing about results.
//!
//! Two shims: the driver prepares its `system.local` topology query with a literal in the
//! WHERE clause (`WHERE key='local'`), which kassandra prepares but then executes without the
//! literal. Such statements are remembered at PREPARE and executed as plain queries. And
//! kassandra's parser knows no `USING TTL ?` between an UPDATE's table and its SET, so that
//! clause is dropped from the text it prepares (it honours no TTL anyway).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use kassandra::KassandraSession;
use kassandra::error::DbError;
use kassandra::frame::request::query::Query;
use kassandra::frame::request::{Request, RequestOpcode};
use kassandra::frame::response::Response;
use kassandra::frame::response::error::Error;
use kassandra::frame::response::result::QueryResult;
use kassandra::frame::{request_stream, response_sink};

/// A running CQL server; it stops when dropped.
#[derive(Debug)]
pub struct CqlServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CqlServer {
    pub fn start() -> Result<CqlServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("cql-test-server".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(serve(listener, stopped));
            })
            .context("starting the CQL server thread")?;
        Ok(CqlServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for CqlServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let db = Arc::new(Mutex::new(KassandraSession::new()));
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(client(db.clone(), stream));
                }
            }
        }
    }
}

/// The query text of a PREPARE body when its WHERE clause holds a literal.
fn literal_query(body: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let query = std::str::from_utf8(body.get(4..4 + len)?).ok()?;
    let lower = query.to_lowercase();
    let at = lower.find(" where ")?;
    lower[at..].contains('\'').then(|| query.to_owned())
}

/// A PREPARE body without the `USING TTL ?` of an UPDATE, or `None` when it has none.
fn without_update_ttl(body: &[u8]) -> Option<Vec<u8>> {
    const TTL: &str = " USING TTL ? SET ";
    let len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let query = std::str::from_utf8(body.get(4..4 + len)?).ok()?;
    if !query.trim_start().to_uppercase().starts_with("UPDATE ") {
        return None;
    }
    let at = query.to_uppercase().find(TTL)?;
    let rewritten = format!("{} SET {}", &query[..at], &query[at + TTL.len()..]);
    let mut out = u32::try_from(rewritten.len()).ok()?.to_be_bytes().to_vec();
    out.extend_from_slice(rewritten.as_bytes());
    out.extend_from_slice(body.get(4 + len..)?);
    Some(out)
}

async fn client(db: Arc<Mutex<KassandraSession>>, mut stream: tokio::net::TcpStream) {
    let (mut read, mut write) = stream.split();
    let mut requests = request_stream(&mut read);
    let mut responses = response_sink(&mut write);
    let mut literal: HashMap<u128, String> = HashMap::new();
    while let Some(Ok((frame, opcode, body))) = requests.next().await {
        let is_prepare = matches!(opcode, RequestOpcode::Prepare);
        let body = match is_prepare.then(|| without_update_ttl(&body)).flatten() {
            Some(rewritten) => rewritten.into(),
            None => body,
        };
        let literal_text = is_prepare.then(|| literal_query(&body)).flatten();
        let response = match Request::deserialize(opcode, &body, frame.flags) {
            Err(_) => Response::Error(Error::new(DbError::ProtocolError, "cannot parse request")),
            Ok(request) => {
                let Ok(mut db) = db.lock() else { return };
                answer(&mut db, request, literal_text, &mut literal)
            }
        };
        if responses.send((response, frame.stream)).await.is_err() {
            return;
        }
    }
}

fn answer(
    db: &mut KassandraSession,
    request: Request<'_>,
    literal_text: Option<String>,
    literal: &mut HashMap<u128, String>,
) -> Response {
    let result = match request {
        Request::StartUp(_) | Request::Register { .. } | Request::AuthResponse => {
            return Response::Ready;
        }
        Request::Options => return Response::options(),
        Request::Query(q) => db.process(q),
        Request::Prepare(p) => {
            let r = db.prepare(p);
            if let (Some(text), Ok(QueryResult::Prepared(prepared))) = (literal_text, &r) {
                literal.insert(prepared.id, text);
            }
            r
        }
        Request::Execute(e) => {
            let text = <[u8; 16]>::try_from(e.id)
                .ok()
                .and_then(|id| literal.get(&u128::from_be_bytes(id)));
            match text.map(|t| Query::simple(t)) {
                Some(Ok(mut q)) => {
                    q.parameters = e.parameters;
                    db.process(q)
                }
                _ => db.execute(e),
            }
        }
        Request::Batch(b) => db.process_batch(b),
    };
    match result {
        Ok(r) => Response::Result(r),
        Err(e) => Response::Error(e),
    }
}
