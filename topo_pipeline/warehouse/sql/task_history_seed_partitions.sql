-- Before a landing compares states: a stored task of the run's partitions without a current
-- version in topo.task_history (a row written by something other than the landing) becomes
-- one, valid from its loaded_at, so the landing compares the fetched task with it.
-- Both sides are restricted to the run's partitions: the anti-join hashes the ids of those
-- partitions only, whatever the size of the table. $partition_dates: DATE[].
-- Template: <fields> is the history's task fields (schema.HISTORY_FIELDS).
INSERT INTO warehouse.topo.task_history BY NAME
SELECT
    t.id,
    t.partition_date,
    1           AS version,
    t.loaded_at AS valid_from,
    NULL        AS valid_to,
    false       AS removed,
    {fields}
FROM warehouse.topo.tasks AS t
WHERE t.partition_date = ANY($partition_dates::DATE[])
  AND t.id NOT IN (
      SELECT h.id
      FROM warehouse.topo.task_history AS h
      WHERE h.partition_date = ANY($partition_dates::DATE[]) AND h.valid_to IS NULL
  );
