"""``make demo`` end to end: the command a new user runs first must work and tell the truth."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline_tests.processes import shell_env


@pytest.mark.slow
def test_the_demo_lands_a_week_publishes_and_prints_what_the_copy_holds(tmp_path: Path) -> None:
    env = {
        **shell_env(),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "TOPO_DUCKDB_PATH": str(tmp_path / "pipeline.duckdb"),
        "TOPO_ANALYST_DUCKDB_PATH": str(tmp_path / "analytics.duckdb"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "topo_pipeline.demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    printed_days = dict(
        (day, int(tasks))
        for day, tasks in re.findall(r"^\s*(\d{4}-\d{2}-\d{2})\s+(\d+)\s", done.stdout, re.M)
    )
    assert len(printed_days) == 7
    # Opened as analysts open it. Its name makes its catalog "analytics", like its schema, so
    # plain analytics.* is ambiguous there: names carry the catalog, as its views do.
    with duckdb.connect(str(tmp_path / "analytics.duckdb"), read_only=True) as con:
        stored = {
            day.isoformat(): count
            for day, count in con.execute(
                "SELECT partition_date, count(*) FROM analytics.topo.tasks GROUP BY ALL"
            ).fetchall()
        }
        priorities = {
            row[0]
            for row in con.execute(
                "SELECT DISTINCT priority FROM analytics.analytics.sla_by_priority"
            ).fetchall()
        }
        recorded = con.execute(
            "SELECT (SELECT count(*) FROM analytics.analytics.task_status_changes "
            "        WHERE to_status <> 'REMOVED'), "
            "(SELECT sum(reassignments) FROM analytics.analytics.task_reassignments), "
            "(SELECT count(*) FROM analytics.topo.task_history WHERE removed)"
        ).fetchone()
    assert stored == printed_days
    # The second fetch of the last days recorded what the simulated users changed.
    printed_changes = re.findall(
        r"^\s*(status changes|reassignments|tasks no longer returned)\s+(\d+)$",
        done.stdout,
        re.M,
    )
    assert tuple(int(n) for _, n in printed_changes) == recorded
    assert all(recorded), recorded
    for priority in priorities:
        assert re.search(rf"^\s*{priority}\s+\d+", done.stdout, re.M), priority
    assert {"HOT", "TODAY", "EXTRA"} <= priorities
    # Names and teams from examples/assignees.csv, and the assignee it leaves out by id.
    with connect(tmp_path / "analytics.duckdb", read_only=True) as con:
        people = con.execute("SELECT name, team FROM warehouse.reference.assignees").fetchall()
        unnamed = con.execute(
            "SELECT DISTINCT assignee_user_id FROM warehouse.analytics.sla_by_assignee "
            "WHERE assignee_user_id IS NOT NULL AND assignee_name IS NULL"
        ).fetchall()
    assert len(people) == 7
    for name, team in people:
        assert re.search(rf"^\s*{name}\s+{team}\s+\d+", done.stdout, re.M), name
    for team in {team for _, team in people}:
        assert re.search(rf"^\s*{team}\s+\d+", done.stdout, re.M), team
    assert len(unnamed) == 1
    assert unnamed[0][0] in done.stdout
    # The directory is loaded after the tasks, so its check sees the assignee it leaves out.
    assert re.search(
        r"^Check assignees_in_directory warns: 1 assignee\(s\) not in the directory$",
        done.stdout,
        re.M,
    ), done.stdout[-3000:]
    assert "sim-demo-key" not in done.stdout + done.stderr
    # It ends with the SLA report, written beside the analyst copy.
    report = (tmp_path / "sla_report.html").resolve()
    assert done.stdout.rstrip().splitlines()[-1].endswith(f"{report} in a browser.")
    assert report.read_text().startswith("<!DOCTYPE html>")
    # The runs are recorded where `make dev` will look for them.
    assert (tmp_path / "dagster_home" / "dagster.yaml").is_file()
    assert any((tmp_path / "dagster_home").rglob("runs*"))
    # Its settings are in the .env it wrote, which make dev and Dagster's commands load:
    # the UI describes the business hours that built the tables.
    assert "TOPO_BUSINESS_HOURS" in (tmp_path / ".env").read_text()
    with_env = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", LOAD_LIKE_DAGSTER],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert with_env.returncode == 0, with_env.stderr[-2000:]
    assert "business hours: Mon,Tue,Wed,Thu,Fri 09:00-18:00" in with_env.stdout


# What Dagster's commands do in a directory: load its .env over the environment, then the
# code location.
LOAD_LIKE_DAGSTER = """
from topo_pipeline.env_file import load_env_file
load_env_file()
from topo_pipeline.definitions import defs
from topo_pipeline.defs.assets.analytics import TASK_SLA_KEY
print(defs.get_assets_def(TASK_SLA_KEY).specs_by_key[TASK_SLA_KEY].description)
"""
