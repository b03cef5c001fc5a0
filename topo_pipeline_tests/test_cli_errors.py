"""What ``dagster asset materialize`` prints when the user got something wrong: one paragraph.

The whole output of the real command, against the simulated API: a rejected key fails
the run with the cause and the fix in one paragraph and no traceback wall; a setting
that cannot work (a future ``TOPO_START_DATE``) stops the code location from loading
with a paragraph naming the variable.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path

import pytest

from topo_pipeline.simulator import DatasetSpec, SimulatedTopoApi, TaskStore, generate_dataset
from topo_pipeline_tests.processes import deployment_env, venv_executable

pytestmark = pytest.mark.slow

DAY = date(2025, 2, 3)
WRONG_KEY = "wrong-key-for-the-cli-0123456789"


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("cli_errors")
    dataset = generate_dataset(DatasetSpec(seed=9, start_date=DAY, days=1, tasks_per_day=[10]))
    env = deployment_env(home / "dagster_home")
    with SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as api:
        env.update(
            {
                "TOPO_API_BASE_URL": api.base_url,
                "TOPO_API_KEY": WRONG_KEY,
                "TOPO_DUCKDB_PATH": str(home / "pipeline.duckdb"),
                "TOPO_ANALYST_DUCKDB_PATH": str(home / "analyst.duckdb"),
                "TOPO_START_DATE": DAY.isoformat(),
                # The step's console lines reach the terminal through a tail process that a
                # busy machine (four test workers) may not have started before the step
                # failed; the README's troubleshooting has users set the same.
                "DAGSTER_COMPUTE_LOG_TAIL_WAIT_AFTER_FINISH": "1",
            }
        )
        yield env


def materialize(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv
        [
            venv_executable("dagster"),
            *("asset", "materialize", "-m", "topo_pipeline.definitions"),
            *("--select", "topo/tasks", "--partition", DAY.isoformat()),
        ],
        env=dict(env),
        cwd=Path(env["DAGSTER_HOME"]).parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def meaningful_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """Output lines, without DEBUG events and Python's warnings about Dagster's own API."""
    lines = (done.stdout + done.stderr).splitlines()
    return [
        line
        for line in lines
        if line.strip()
        and " - DEBUG - " not in line
        and "Warning: " not in line
        and not line.startswith("  return ")
    ]


def test_a_rejected_key_prints_the_cause_and_the_fix_without_a_traceback(
    cli_env: dict[str, str],
) -> None:
    done = materialize(cli_env)

    assert done.returncode != 0
    output = "\n".join(meaningful_lines(done))
    assert "topo/tasks failed: The Topo API key was rejected" in output
    assert "check TOPO_API_KEY" in output
    assert output.count("API key was rejected") == 1
    assert "Stack Trace" not in output
    assert "Traceback" not in output
    assert len(meaningful_lines(done)) <= 10, output
    assert WRONG_KEY not in done.stdout + done.stderr


def test_a_future_start_date_is_refused_by_name_when_the_code_location_loads(
    cli_env: dict[str, str],
) -> None:
    done = materialize({**cli_env, "TOPO_START_DATE": "2999-01-01"})

    assert done.returncode != 0
    lines = meaningful_lines(done)
    assert lines[0].startswith("topo_pipeline cannot load: TOPO_START_DATE 2999-01-01 is in the")
    assert "Traceback" not in done.stderr
    assert len(lines) == 2, lines
