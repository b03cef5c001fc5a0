-- Every partition_date an analytics rebuild covers: the days topo.tasks holds, and the days
-- the table being rebuilt still holds (so a day whose tasks are gone loses its rows).
-- Template: <tasks> the qualified topo.tasks, <table> the qualified table rebuilt.
SELECT DISTINCT partition_date FROM {tasks}
UNION
SELECT DISTINCT partition_date FROM {table}
ORDER BY partition_date
