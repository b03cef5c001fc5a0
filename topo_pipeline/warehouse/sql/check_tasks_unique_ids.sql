-- unique_ids: task ids stored more than once anywhere in topo.tasks, with the first examples.
WITH repeated AS (
    SELECT id, count(*) AS copies
    FROM warehouse.topo.tasks
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
