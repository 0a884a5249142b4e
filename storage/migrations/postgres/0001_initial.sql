-- The schema of every store but the signing keys. The Rust module `postgres` documents why
-- each table and index has the shape it has; comments here say what a column holds.
--
-- Ids are snowflakes stored as BIGINT: the u64 bit pattern reinterpreted as i64, so every id
-- round-trips and real snowflakes (below 2^63 until the year 2084) keep their value and order.
-- Text keys compared byte for byte use COLLATE "C", so lookups and orders never depend on the
-- database's locale.

CREATE TABLE users (
    id            BIGINT PRIMARY KEY,
    -- Lowercased by the application (Rust's Unicode case mapping), not by lower(): lower()
    -- follows the database's LC_CTYPE and folds only ASCII in a C-locale database.
    username_key  TEXT COLLATE "C" NOT NULL,
    email_key     TEXT COLLATE "C",
    record        JSONB NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_email_key ON users (email_key);

CREATE TABLE credentials (
    user_id         BIGINT PRIMARY KEY,
    password_hash   TEXT NOT NULL,
    totp_secret     TEXT,
    totp_last_step  BIGINT NOT NULL,
    backup_codes    JSONB NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT COLLATE "C" PRIMARY KEY,
    family_id   BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    -- Rotated tokens stay, spent, so that presenting one again is detected as reuse.
    spent       BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- A family once revoked stays revoked, including for tokens stored into it later.
CREATE TABLE revoked_refresh_families (
    family_id  BIGINT PRIMARY KEY
);

CREATE TABLE applications (
    id           BIGINT PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    owner_id     BIGINT NOT NULL,
    bot_user_id  BIGINT NOT NULL,
    verify_key   TEXT NOT NULL,
    flags        BIGINT NOT NULL
);
CREATE UNIQUE INDEX applications_bot_user ON applications (bot_user_id);

-- One token per bot: setting a new one replaces (and so revokes) the old.
CREATE TABLE bot_tokens (
    bot_user_id  BIGINT PRIMARY KEY,
    token_hash   TEXT COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX bot_tokens_hash ON bot_tokens (token_hash);

-- Guild metadata: the guild row carries no roles (they are rows of their own).
CREATE TABLE guilds (
    id      BIGINT PRIMARY KEY,
    record  JSONB NOT NULL
);

CREATE TABLE guild_roles (
    guild_id  BIGINT NOT NULL,
    role_id   BIGINT NOT NULL,
    record    JSONB NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

CREATE TABLE guild_channels (
    channel_id  BIGINT PRIMARY KEY,
    guild_id    BIGINT NOT NULL,
    record      JSONB NOT NULL
);
CREATE INDEX guild_channels_guild ON guild_channels (guild_id);

CREATE TABLE guild_members (
    guild_id  BIGINT NOT NULL,
    user_id   BIGINT NOT NULL,
    record    JSONB NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
-- The guilds of a user.
CREATE INDEX guild_members_user ON guild_members (user_id, guild_id);

CREATE TABLE guild_bans (
    guild_id  BIGINT NOT NULL,
    user_id   BIGINT NOT NULL,
    record    JSONB NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- Codes are unique across guilds.
CREATE TABLE invites (
    code      TEXT COLLATE "C" PRIMARY KEY,
    guild_id  BIGINT NOT NULL,
    record    JSONB NOT NULL
);
CREATE INDEX invites_guild ON invites (guild_id);

-- Messages in Discord's ScyllaDB layout: partition (channel_id, bucket), clustering
-- message_id, where bucket = 10-day window of the id's timestamp.
CREATE TABLE messages (
    channel_id         BIGINT NOT NULL,
    bucket             INTEGER NOT NULL,
    message_id         BIGINT NOT NULL,
    guild_id           BIGINT,
    author_id          BIGINT NOT NULL,
    content            TEXT NOT NULL,
    edited_at          TIMESTAMPTZ,
    tts                BOOLEAN NOT NULL,
    mention_everyone   BOOLEAN NOT NULL,
    mentions           BIGINT[] NOT NULL,
    mention_roles      BIGINT[] NOT NULL,
    attachments        JSONB NOT NULL,
    embeds             JSONB NOT NULL,
    pinned             BOOLEAN NOT NULL,
    kind               SMALLINT NOT NULL,
    flags              BIGINT NOT NULL,
    nonce              JSONB,
    message_reference  JSONB,
    PRIMARY KEY (channel_id, bucket, message_id)
);

-- One row per (message, emoji, user); the primary key orders a message's reactors of one
-- emoji by user id.
CREATE TABLE reactions (
    channel_id  BIGINT NOT NULL,
    message_id  BIGINT NOT NULL,
    emoji       TEXT COLLATE "C" NOT NULL,
    user_id     BIGINT NOT NULL,
    PRIMARY KEY (channel_id, message_id, emoji, user_id)
);

-- Per-emoji counts, kept next to the reactions because every message read shows them.
-- first_added orders a message's emoji by when each was first added; the row goes when the
-- last reaction of its emoji does, so adding that emoji again puts it last.
CREATE SEQUENCE reaction_emoji_order;
CREATE TABLE reaction_emoji (
    channel_id   BIGINT NOT NULL,
    message_id   BIGINT NOT NULL,
    emoji        TEXT COLLATE "C" NOT NULL,
    first_added  BIGINT NOT NULL DEFAULT nextval('reaction_emoji_order'),
    count        INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_id, emoji)
);
CREATE INDEX reaction_emoji_first_added ON reaction_emoji (channel_id, message_id, first_added);

CREATE TABLE pins (
    channel_id  BIGINT NOT NULL,
    message_id  BIGINT NOT NULL,
    -- The message's bucket, to reach its row by primary key.
    bucket      INTEGER NOT NULL,
    pinned_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, message_id)
);
CREATE INDEX pins_order ON pins (channel_id, pinned_at DESC);

-- The latest pin time handed out per channel: a pin takes max(now, latest + 1 ms) under this
-- row's lock, so pin times in a channel strictly increase whichever node pins.
CREATE TABLE pin_clocks (
    channel_id      BIGINT PRIMARY KEY,
    last_pinned_at  TIMESTAMPTZ NOT NULL
);
