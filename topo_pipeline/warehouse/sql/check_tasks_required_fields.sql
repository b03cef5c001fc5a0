-- required_fields_present: NULL counts of the fields Topo documents as required, in the given
-- partitions (id and created_at are NOT NULL in the table). One column per field, named after it.
SELECT
    count(*) AS rows_checked,
    count(*) FILTER (WHERE organization_id IS NULL) AS organization_id,
    count(*) FILTER (WHERE type IS NULL) AS type,
    count(*) FILTER (WHERE priority IS NULL) AS priority,
    count(*) FILTER (WHERE status IS NULL) AS status,
    count(*) FILTER (WHERE sequence_id IS NULL) AS sequence_id,
    count(*) FILTER (WHERE updated_at IS NULL) AS updated_at,
    coalesce(
        list(id ORDER BY id) FILTER (
            WHERE organization_id IS NULL
                OR type IS NULL
                OR priority IS NULL
                OR status IS NULL
                OR sequence_id IS NULL
                OR updated_at IS NULL
        ),
        []
    )[1:$max_examples] AS example_ids
FROM warehouse.topo.tasks
WHERE partition_date = ANY($partition_dates::DATE[]);
