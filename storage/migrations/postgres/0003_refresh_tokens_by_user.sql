-- A password change revokes every session (refresh family) of a user: find them by user.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
