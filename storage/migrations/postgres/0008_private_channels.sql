-- Private channels: DMs (kind 1) and group DMs (kind 3). Each is a unit of its own whose id is
-- the channel's id, so the row is keyed by that id; the primary key is also the index
-- `channel_guild` finds a private channel by (it is its own unit).
CREATE TABLE private_channels (
    id      BIGINT PRIMARY KEY,
    record  JSONB NOT NULL
);
-- The DM of each pair of users, lower id first: the primary key keeps it one per pair.
CREATE TABLE dm_pairs (
    low_user_id   BIGINT NOT NULL,
    high_user_id  BIGINT NOT NULL,
    channel_id    BIGINT NOT NULL,
    PRIMARY KEY (low_user_id, high_user_id)
);
-- The private channels each user has open; closing one deletes its row, not the channel.
CREATE TABLE user_private_channels (
    user_id     BIGINT NOT NULL,
    channel_id  BIGINT NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
-- How a user stands towards another (Discord's relationship type; 2 is blocked), one-way.
CREATE TABLE relationships (
    user_id    BIGINT NOT NULL,
    target_id  BIGINT NOT NULL,
    kind       SMALLINT NOT NULL,
    since      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, target_id)
);
