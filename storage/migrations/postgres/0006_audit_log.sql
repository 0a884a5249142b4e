-- A guild's audit log: one row per entry, written in the same transaction as the change it
-- records. `user_id` and `action_type` are columns so the API's filters run in the index scan;
-- the entry itself is the JSON record.
CREATE TABLE audit_log_entries (
    guild_id     BIGINT NOT NULL,
    entry_id     BIGINT NOT NULL,
    user_id      BIGINT,
    action_type  INTEGER NOT NULL,
    record       JSONB NOT NULL,
    PRIMARY KEY (guild_id, entry_id)
);
