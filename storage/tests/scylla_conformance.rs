//! The conformance suite against a real ScyllaDB (or Cassandra), named by `SCYLLA_URI`
//! (`host:port`, e.g. `127.0.0.1:9042`). No ScyllaDB can run on the machines this repository is
//! tested on, so every case is ignored unless asked for with `--ignored`:
//!
//! ```sh
//! docker run --rm -d -p 9042:9042 scylladb/scylla --smp 1 --memory 1G --developer-mode 1
//! SCYLLA_URI=127.0.0.1:9042 cargo test -p enrichment-storage --features scylla,testsuite \
//!     --test scylla_conformance -- --ignored
//! ```
//!
//! Each case gets a keyspace of its own, so cases run in parallel without seeing each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use enrichment_storage::Stores;
use enrichment_storage::scylla::{CqlConsistency, Replication, ScyllaOptions, ScyllaStore};

async fn open(_dir: PathBuf) -> Stores {
    static N: AtomicU32 = AtomicU32::new(0);
    let uri = std::env::var("SCYLLA_URI")
        .ok()
        .filter(|v| !v.is_empty())
        .expect("SCYLLA_URI names the ScyllaDB to run the conformance suite against");
    let options = ScyllaOptions {
        nodes: uri.split(',').map(str::to_owned).collect(),
        keyspace: format!(
            "conformance_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ),
        replication: Replication::Simple,
        replication_factor: 1,
        consistency: CqlConsistency::LocalQuorum,
        local_datacenter: None,
        connect_timeout: Duration::from_secs(10),
    };
    ScyllaStore::migrate(&options).await.expect("migrate");
    ScyllaStore::connect(options)
        .await
        .expect("connect to ScyllaDB")
        .stores()
}

enrichment_storage::conformance_tests!(
    open,
    ignore = "needs a real ScyllaDB: set SCYLLA_URI (host:port) and run with --ignored"
);
