//! The shared-state conformance suite on the in-process implementation.

use std::sync::Arc;

use enrichment_storage::shared::SharedState;
use enrichment_storage::shared::memory::MemoryShared;

async fn open() -> Arc<dyn SharedState> {
    Arc::new(MemoryShared::new())
}

enrichment_storage::shared_state_conformance_tests!(open);
