-- count_matches_api_total: rows landed per partition next to the total Topo reported for it.
-- $expected is parallel to $partition_dates; NULL where no total was given.
WITH expected AS (
    SELECT
        unnest($partition_dates::DATE[]) AS partition_date,
        unnest($expected::BIGINT[]) AS expected
),
landed AS (
    SELECT partition_date, count(*) AS landed
    FROM warehouse.topo.tasks
    WHERE partition_date = ANY($partition_dates::DATE[])
    GROUP BY partition_date
)
SELECT e.partition_date, e.expected, coalesce(l.landed, 0) AS landed
FROM expected AS e
LEFT JOIN landed AS l USING (partition_date)
ORDER BY e.partition_date;
