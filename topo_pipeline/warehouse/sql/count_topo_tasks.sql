-- Rows held in topo.tasks (sizes the memory a landing needs for the primary-key index).
SELECT count(*) FROM warehouse.topo.tasks;
