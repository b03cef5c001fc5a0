-- The arrival of the copy of each staged task id that lands: the one with the latest
-- updated_at (a task fetched twice because it changed while its day was read keeps its
-- newer state, whichever copy arrived last), then the last arrival among those (identical
-- copies, or a conflict that the no_conflicting_duplicates check reports). A NULL
-- updated_at loses to any timestamp. Substituted into insert_topo_tasks_from_stage.sql and
-- task_history_observe.sql, so the table and its history land the same copy.
SELECT arg_max(arrival, (coalesce(updated_at, '-infinity'::TIMESTAMPTZ), arrival))
FROM stage.main.staged_tasks
GROUP BY id
