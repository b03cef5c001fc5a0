-- unique_ids: task ids of the run's partitions that are stored more than once anywhere in
-- topo.tasks, with the first examples. Only the run's ids are hashed, so the check's memory
-- follows the run's size, not the table's; every landing runs it, so no id is ever stored
-- twice. $partition_dates: DATE[]; $max_examples: INTEGER.
WITH run_ids AS (
    SELECT id
    FROM warehouse.topo.tasks
    WHERE partition_date IN (SELECT unnest($partition_dates::DATE[]))
),
repeated AS (
    SELECT id, count(*) AS copies
    FROM warehouse.topo.tasks
    WHERE id IN (SELECT id FROM run_ids)
    GROUP BY id
    HAVING count(*) > 1
)
SELECT
    (SELECT count(*) FROM warehouse.topo.tasks) AS rows_checked,
    count(*) AS repeated_ids,
    coalesce(sum(copies), 0) AS rows_with_repeated_ids,
    coalesce(list({'id': id, 'copies': copies} ORDER BY copies DESC, id), [])[1:$max_examples]
        AS examples
FROM repeated;
