-- The versions one landing recorded for the given partitions: those valid from its
-- loaded_at, and of them the ones marking a task Topo no longer returned.
-- $partition_dates: DATE[]; $loaded_at: TIMESTAMPTZ.
SELECT count(*) AS versions, count(*) FILTER (WHERE removed) AS removed
FROM warehouse.topo.task_history
WHERE partition_date = ANY($partition_dates::DATE[]) AND valid_from = $loaded_at::TIMESTAMPTZ;
