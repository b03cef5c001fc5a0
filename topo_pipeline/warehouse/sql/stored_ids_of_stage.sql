-- Staged task ids already stored in topo.tasks, run after the run's partitions were
-- deleted (same transaction): any hit sits in a partition outside the run's windows, and
-- landing it would store the id twice. The semi-join hashes the stage's ids only, so its
-- memory follows the run's size, not the table's. $limit: how many examples to return.
SELECT t.id, t.partition_date
FROM warehouse.topo.tasks AS t
WHERE t.id IN (SELECT id FROM stage.main.staged_tasks)
ORDER BY t.id
LIMIT $limit;
