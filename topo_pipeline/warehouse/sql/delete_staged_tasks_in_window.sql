-- Drops the staged tasks of one created-at window [start, end): the client is about to read
-- it afresh because its set of tasks changed while it was being read.
DELETE FROM staged_tasks
WHERE created_at >= CAST($start AS TIMESTAMPTZ) AND created_at < CAST($end AS TIMESTAMPTZ);
