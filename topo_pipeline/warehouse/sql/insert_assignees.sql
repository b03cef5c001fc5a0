-- The directory's rows as parallel lists (one entry per CSV row); $loaded_at: TIMESTAMPTZ.
INSERT INTO warehouse.reference.assignees (user_id, name, team, line, loaded_at)
SELECT
    unnest($user_ids::VARCHAR[]),
    unnest($names::VARCHAR[]),
    unnest($teams::VARCHAR[]),
    unnest($lines::INTEGER[]),
    $loaded_at::TIMESTAMPTZ;
