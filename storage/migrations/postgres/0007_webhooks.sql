-- Incoming webhooks, a guild's rows like its invites; the primary key on the webhook id is the
-- index `/webhooks/{id}/...` routes are found by. A message a webhook posted names it (and the
-- name and avatar it posted under) in `webhook`; NULL for every other message.
CREATE TABLE guild_webhooks (
    webhook_id  BIGINT PRIMARY KEY,
    guild_id    BIGINT NOT NULL,
    record      JSONB NOT NULL
);
CREATE INDEX guild_webhooks_by_guild ON guild_webhooks (guild_id);
ALTER TABLE messages ADD COLUMN webhook JSONB;
