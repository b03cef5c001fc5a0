"""Dagster's own commands work from the repository root, with and without ``DAGSTER_HOME``.

``dg check defs``, ``dagster asset materialize`` and ``dg launch`` as the README and
Dagster's docs give them, run in the checkout (which holds ``dagster.yaml`` and
``workspace.yaml``), in a shell that set no ``DAGSTER_*`` variable or one that points
``DAGSTER_HOME`` at a prepared instance. The instance settings name only Dagster's own
classes, so nothing of the project's is needed to read them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import duckdb
import pytest

from topo_pipeline.instance import REPO_ROOT
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline_tests.processes import deployment_env, shell_env, venv_executable

pytestmark = pytest.mark.slow

DAY = date(2025, 2, 3)


@pytest.fixture(scope="module")
def api() -> Iterator[SimulatedTopoApi]:
    dataset = generate_dataset(DatasetSpec(seed=7, start_date=DAY, days=1, tasks_per_day=[12]))
    with SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as served:
        yield served


def settings_env(api: SimulatedTopoApi, folder: Path, *, home: bool) -> dict[str, str]:
    env = deployment_env(folder / "dagster_home") if home else shell_env()
    env.update(
        {
            "TOPO_API_BASE_URL": api.base_url,
            "TOPO_API_KEY": DEMO_API_KEY,
            "TOPO_DUCKDB_PATH": str(folder / "pipeline.duckdb"),
            "TOPO_ANALYST_DUCKDB_PATH": str(folder / "analyst.duckdb"),
            "TOPO_START_DATE": DAY.isoformat(),
        }
    )
    return env


def run(argv: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the venv's own commands
        list(argv),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def landed(folder: Path) -> int:
    with duckdb.connect(str(folder / "analyst.duckdb"), read_only=True) as con:
        (count,) = con.execute("SELECT count(*) FROM topo.tasks").fetchone() or (0,)
    return int(count)


@pytest.mark.parametrize("home", [True, False], ids=["DAGSTER_HOME", "no DAGSTER_HOME"])
def test_dg_check_defs(api: SimulatedTopoApi, tmp_path: Path, home: bool) -> None:
    done = run([venv_executable("dg"), "check", "defs"], settings_env(api, tmp_path, home=home))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("home", [True, False], ids=["DAGSTER_HOME", "no DAGSTER_HOME"])
def test_dagster_asset_materialize_of_the_readme_selection(
    api: SimulatedTopoApi, tmp_path: Path, home: bool
) -> None:
    command = [
        venv_executable("dagster"),
        *("asset", "materialize", "-m", "topo_pipeline.definitions"),
        *("--select", "topo/tasks*", "--partition", DAY.isoformat()),
    ]
    done = run(command, settings_env(api, tmp_path, home=home))
    assert done.returncode == 0, done.stdout + done.stderr
    # The analyst copy is current when the command exits.
    assert landed(tmp_path) == 12


def test_dg_launch_of_a_range(api: SimulatedTopoApi, tmp_path: Path) -> None:
    command = [
        venv_executable("dg"),
        *("launch", "--assets", "topo/tasks*"),
        *("--partition-range", f"{DAY.isoformat()}...{DAY.isoformat()}"),
    ]
    done = run(command, settings_env(api, tmp_path, home=True))
    assert done.returncode == 0, done.stdout + done.stderr
    assert landed(tmp_path) == 12
