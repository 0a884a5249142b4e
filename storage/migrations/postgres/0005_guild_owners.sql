-- Which node runs each guild's actor in a cluster. A record is live while it is not released
-- and its node (node_id, generation) still holds `pair` in id_leases under a live lease, so
-- ownership expires with the node's one lease and needs no renewals of its own. Rows are never
-- deleted: a guild's epoch only grows, and a write fenced by epoch tells a deposed owner apart.
CREATE TABLE guild_owners (
    guild_id    BIGINT PRIMARY KEY,
    node_id     TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    pair        SMALLINT NOT NULL CHECK (pair >= 0 AND pair < 1024),
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    released    BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX guild_owners_by_node ON guild_owners (node_id, generation, guild_id);
