-- JWT signing keys, shared by every node of a cluster.
CREATE TABLE signing_keys (
    kid          TEXT COLLATE "C" PRIMARY KEY,
    private_pem  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    retired      BOOLEAN NOT NULL
);
CREATE INDEX signing_keys_order ON signing_keys (created_at, kid);
