-- Custom emojis, a guild's rows like its roles: the record as JSONB, keyed by guild first, so
-- loading or deleting a guild reads one range of the primary key. The image is not here; it is
-- a blob of its own (`emojis/{id}`).
CREATE TABLE guild_emojis (
    guild_id  BIGINT NOT NULL,
    emoji_id  BIGINT NOT NULL,
    record    JSONB NOT NULL,
    PRIMARY KEY (guild_id, emoji_id)
);
