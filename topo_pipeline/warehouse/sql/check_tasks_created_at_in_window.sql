-- created_at_in_window: rows of the given partitions whose created_at is outside
-- [window start, window end) of their partition. The three lists are parallel.
WITH windows AS (
    SELECT
        unnest($partition_dates::DATE[]) AS partition_date,
        unnest($window_starts::TIMESTAMPTZ[]) AS window_start,
        unnest($window_ends::TIMESTAMPTZ[]) AS window_end
),
placed AS (
    SELECT
        t.id,
        t.partition_date,
        t.created_at,
        w.window_start,
        w.window_end,
        t.created_at >= w.window_start AND t.created_at < w.window_end AS inside
    FROM warehouse.topo.tasks AS t
    JOIN windows AS w USING (partition_date)
)
SELECT
    count(*) AS rows_checked,
    count(*) FILTER (WHERE NOT inside) AS outside_rows,
    count(DISTINCT partition_date) FILTER (WHERE NOT inside) AS partitions_affected,
    coalesce(
        list(
            {
                'id': id,
                'partition_date': partition_date,
                'created_at': created_at,
                'window_start': window_start,
                'window_end': window_end
            }
            ORDER BY partition_date, created_at, id
        ) FILTER (WHERE NOT inside),
        []
    )[1:$max_examples] AS examples
FROM placed;
