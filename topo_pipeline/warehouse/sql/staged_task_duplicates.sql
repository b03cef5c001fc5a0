-- Task ids a run fetched more than once, and how their copies differ. Run on the stage's own
-- connection before it is landed. Copies with the same raw text are identical; copies that
-- differ and carry different updated_at are versions of a task that changed while its day
-- was read (the latest updated_at lands); copies that differ under one updated_at are a
-- conflict. Only the repeated ids are grouped by content (a 128-bit hash of raw), so the
-- cost follows the duplicates, not the stage. A NULL updated_at counts as one instant.
-- $max_examples: INTEGER (conflicting ids spelled out, and superseded ids).
WITH repeated AS (
    SELECT id
    FROM staged_tasks
    GROUP BY id
    HAVING count(*) > 1
),
contents AS (
    -- One row per distinct content of a repeated id.
    SELECT id, any_value(updated_at) AS updated_at, count(*) AS copies
    FROM staged_tasks
    WHERE id IN (SELECT id FROM repeated)
    GROUP BY id, md5_number(raw)
),
by_id AS (
    SELECT
        id,
        sum(copies) AS copies,
        count(*) AS contents,
        count(DISTINCT coalesce(updated_at, '-infinity'::TIMESTAMPTZ)) AS instants
    FROM contents
    GROUP BY id
),
shown_conflicts AS (
    SELECT id FROM by_id WHERE contents > instants ORDER BY id LIMIT $max_examples
),
shown_superseded AS (
    SELECT id FROM by_id WHERE contents = instants AND contents > 1 ORDER BY id LIMIT $max_examples
)
SELECT
    count(*) AS repeated_ids,
    coalesce(sum(copies - contents), 0) AS identical_copies,
    coalesce(sum(contents - 1) FILTER (WHERE contents = instants), 0) AS superseded_versions,
    count(*) FILTER (WHERE contents > instants) AS conflicting_ids,
    (
        SELECT coalesce(
            list(
                {'id': id, 'partition_date': partition_date, 'updated_at': updated_at, 'raw': raw}
                ORDER BY id, updated_at NULLS FIRST, raw
            ),
            []
        )
        FROM (
            SELECT DISTINCT id, partition_date, updated_at, raw
            FROM staged_tasks
            WHERE id IN (SELECT id FROM shown_conflicts)
        )
    ) AS conflict_copies,
    (SELECT coalesce(list(id ORDER BY id), []) FROM shown_superseded) AS superseded_ids
FROM by_id;
