-- Schema 8: cheap reads for the public pages (measured in tests/bench/bench_web.py, docs/benchmarks.md).
--
-- The feed reads published posts newest first, keyset-paginated on (created_at, id). With `id` in the index the
-- whole order and the cursor comparison come from it; (moderation, created_at) alone left a sort of each
-- created_at group. The new index covers everything the old one served, so the old one goes.
CREATE INDEX posts_by_moderation_time ON posts (moderation, created_at, id);
DROP INDEX posts_by_moderation;

-- How many posts are in each moderation state, kept by triggers so every write path (runs, moderation, deletion)
-- keeps it true; the landing and the gallery read one row instead of counting every published post per view.
CREATE TABLE post_counts (
    moderation TEXT PRIMARY KEY CHECK (moderation IN ('published', 'held', 'removed')),
    posts      INTEGER NOT NULL
) STRICT;
INSERT INTO post_counts (moderation, posts)
    SELECT states.moderation, (SELECT COUNT(*) FROM posts WHERE posts.moderation = states.moderation)
    FROM (SELECT 'published' AS moderation UNION ALL SELECT 'held' UNION ALL SELECT 'removed') AS states;

CREATE TRIGGER post_counts_insert AFTER INSERT ON posts BEGIN
    UPDATE post_counts SET posts = posts + 1 WHERE moderation = NEW.moderation;
END;
CREATE TRIGGER post_counts_delete AFTER DELETE ON posts BEGIN
    UPDATE post_counts SET posts = posts - 1 WHERE moderation = OLD.moderation;
END;
CREATE TRIGGER post_counts_moderation AFTER UPDATE OF moderation ON posts
WHEN OLD.moderation IS NOT NEW.moderation BEGIN
    UPDATE post_counts SET posts = posts - 1 WHERE moderation = OLD.moderation;
    UPDATE post_counts SET posts = posts + 1 WHERE moderation = NEW.moderation;
END;

-- "Runs today" on the landing counts one day's ledger rows; the primary key leads with the resident, so without
-- this index that count read the whole ledger, which grows by a row per resident per day.
CREATE INDEX run_ledger_by_day ON run_ledger (day, state);
