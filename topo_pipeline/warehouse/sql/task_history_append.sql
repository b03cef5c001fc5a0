-- Appends the versions a landing observed (observed_task_versions) as current versions,
-- valid from the landing's loaded_at. $loaded_at: TIMESTAMPTZ.
INSERT INTO warehouse.topo.task_history BY NAME
SELECT
    *,
    $loaded_at::TIMESTAMPTZ AS valid_from,
    NULL                    AS valid_to
FROM observed_task_versions;
