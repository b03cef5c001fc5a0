-- known_enum_values: values of the enum fields, in the given partitions, that are not among
-- the documented ones. $known_fields / $known_values are parallel (one pair per known value).
-- UNPIVOT drops NULLs: a null enum is either allowed or reported by required_fields_present.
WITH known AS (
    SELECT
        unnest($known_fields::VARCHAR[]) AS field,
        unnest($known_values::VARCHAR[]) AS value
),
observed AS (
    UNPIVOT (
        SELECT id, type, priority, status, disposition, reopen_reason
        FROM warehouse.topo.tasks
        WHERE partition_date = ANY($partition_dates::DATE[])
    )
    ON type, priority, status, disposition, reopen_reason
    INTO NAME field VALUE value
)
SELECT
    o.field,
    o.value,
    count(*) AS tasks,
    list(o.id ORDER BY o.id)[1:$max_examples] AS example_ids
FROM observed AS o
ANTI JOIN known AS k ON o.field = k.field AND o.value = k.value
GROUP BY o.field, o.value
ORDER BY o.field, tasks DESC, o.value;
