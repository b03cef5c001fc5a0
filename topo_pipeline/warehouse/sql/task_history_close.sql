-- Ends the current version of every task a landing observed a new version of (the rows of
-- observed_task_versions), at the landing's loaded_at. $partition_dates: DATE[];
-- $loaded_at: TIMESTAMPTZ.
UPDATE warehouse.topo.task_history
SET valid_to = $loaded_at::TIMESTAMPTZ
WHERE partition_date = ANY($partition_dates::DATE[])
  AND valid_to IS NULL
  AND id IN (SELECT id FROM observed_task_versions);
