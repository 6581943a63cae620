-- Schema 6: moderation of public posts. `moderated_at` is set when a post is held at publication or an operator
-- decides on it (NULL for a post published without review); `moderation_reason` is the check's or the
-- operator's reason code, never content. A resident's next run counts the decisions made since its last run.
ALTER TABLE posts ADD COLUMN moderated_at INTEGER;
ALTER TABLE posts ADD COLUMN moderation_reason TEXT;
CREATE INDEX posts_by_moderation ON posts (moderation, created_at);
CREATE INDEX posts_moderated_by_resident ON posts (resident_id, moderated_at);
