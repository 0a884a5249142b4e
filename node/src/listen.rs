//! The node's listening sockets, bound with an explicit accept backlog.
//!
//! `std::net::TcpListener::bind` asks the kernel for a backlog of 128. When thousands of
//! clients reconnect at once (a network blip, a node restarting, a resume storm), that queue
//! overflows at once, and every SYN the kernel drops is retried by the client only after its
//! retransmission timeout: 1 s, then 3 s, then 7 s. A deep queue lets the storm wait in the
//! kernel instead, at a few hundred bytes per pending connection.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `addr` and listens with room for `backlog` connections not yet accepted (the kernel
/// caps it at `net.core.somaxconn`).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std does on Unix: a restarted node can bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Connects `n` clients at once to a listener that accepts none of them; how many got
    /// through the handshake within a second.
    async fn connected_without_accept(listener: &std::net::TcpListener, n: usize) -> usize {
        let addr = listener.local_addr().expect("bound");
        let attempts = (0..n).map(|_| async move {
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                .await
                .ok()
                .and_then(Result::ok)
        });
        futures::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
            .count()
    }

    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_backlog_instead_of_being_dropped() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        // 600 at once: over std's 128, within the 1,024 asked for (and this machine's
        // somaxconn, 4096 by default since Linux 5.4).
        let deep = bind(loopback, 1024).expect("bind");
        assert_eq!(connected_without_accept(&deep, 600).await, 600);

        // The same burst against std's default backlog: the queue overflows and the rest
        // wait for a SYN retransmission, past the second allowed.
        let shallow = std::net::TcpListener::bind(loopback).expect("bind");
        let got = connected_without_accept(&shallow, 600).await;
        assert!(got < 600, "{got} of 600 connected to a 128-deep backlog");
    }
}
