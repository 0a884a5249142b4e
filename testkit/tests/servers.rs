//! Each server starts, answers on its port, and is gone once dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use enrichment_testkit::{Postgres, Redis, S3Server};

fn redis_ping(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn postgres_starts_creates_databases_and_stops() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let url = pg.fresh_database().expect("create a database");
    let out = Command::new("psql")
        .args([&url, "-tAc", "SELECT 40 + 2"])
        .output()
        .expect("run psql");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let port = pg.port();
    drop(pg);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn redis_restarts_on_the_same_port() {
    let mut redis = Redis::start().expect("start redis");
    assert_eq!(redis_ping(redis.port()).unwrap(), "+PONG\r\n");
    redis.stop();
    assert!(redis_ping(redis.port()).is_err());
    redis.restart().expect("restart redis");
    assert_eq!(redis_ping(redis.port()).unwrap(), "+PONG\r\n");
}

#[test]
fn s3_server_serves_its_bucket() {
    let s3 = S3Server::start().expect("start s3s-fs");
    std::fs::write(s3.bucket_dir().join("hello.txt"), b"hi").unwrap();
    // Unsigned requests are refused: the server checks credentials.
    let mut s = TcpStream::connect(s3.endpoint().trim_start_matches("http://")).unwrap();
    s.write_all(
        b"GET /attachments/hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
}

/// Set in the child process of `servers_held_until_exit_leave_no_files`.
const HOLD: &str = "ENRICHMENT_TESTKIT_HOLD_SERVERS";

/// Servers held in a `static` are never dropped. When the process that holds them exits,
/// the servers stop and their directories go with them.
#[test]
fn servers_held_until_exit_leave_no_files() {
    if std::env::var_os(HOLD).is_some() {
        let pg = Postgres::start().expect("start PostgreSQL");
        let redis = Redis::start().expect("start redis");
        println!("held {} {}", pg.dir().display(), pg.port());
        println!("held {} {}", redis.dir().display(), redis.port());
        std::io::stdout().flush().unwrap();
        // Exit without dropping, as a test binary does with its statics.
        std::process::exit(0);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "servers_held_until_exit_leave_no_files",
            "--nocapture",
        ])
        .env(HOLD, "1")
        .output()
        .expect("run the holding process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let held: Vec<(std::path::PathBuf, u16)> = stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("held ")?.split(' ');
            Some((parts.next()?.into(), parts.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(held.len(), 2, "child output: {stdout}");
    for (dir, port) in held {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while (dir.exists() || TcpStream::connect(("127.0.0.1", port)).is_ok())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(!dir.exists(), "{} is still there", dir.display());
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
