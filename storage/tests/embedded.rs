//! The conformance suite against the embedded fjall store.

use std::path::PathBuf;
use std::sync::Arc;

use enrichment_storage::Stores;
use enrichment_storage::embedded::EmbeddedStore;

async fn open(dir: PathBuf) -> Stores {
    Arc::new(EmbeddedStore::open(&dir).expect("open the embedded store")).stores()
}

enrichment_storage::conformance_tests!(open);
