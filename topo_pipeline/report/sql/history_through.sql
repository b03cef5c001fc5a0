-- The latest change topo.task_history holds: when the last landing observed something.
SELECT max(valid_from) FROM warehouse.topo.task_history;
