-- Snowflake id pairs held by nodes. `pair` is worker_id * 32 + process_id; the holder is a node
-- id and the generation of its process. A lease is live while expires_at is ahead of the
-- database's now(), so the nodes' clocks need not agree. A released lease keeps its row with
-- expires_at set to the release time: free pairs are handed out never-claimed first, then the
-- one free the longest.
CREATE TABLE id_leases (
    pair        SMALLINT PRIMARY KEY CHECK (pair >= 0 AND pair < 1024),
    node_id     TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
