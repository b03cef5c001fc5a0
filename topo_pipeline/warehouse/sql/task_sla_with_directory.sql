-- analytics.task_sla with each task's assignee_name and team from the assignee directory
-- (NULL for unassigned tasks, ids the directory does not name, and without a directory).
SELECT s.*, a.name AS assignee_name, a.team
FROM warehouse.analytics.task_sla AS s
LEFT JOIN warehouse.reference.assignees AS a ON a.user_id = s.assignee_user_id
