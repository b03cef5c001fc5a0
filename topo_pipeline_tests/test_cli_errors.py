"""What ``dagster asset materialize`` prints when a user or Topo got something wrong.

The whole output of the real command, against the simulated API and its fault switches.
With the code location's console logger selected (``--config-json`` naming ``console``,
as the README shows), every error a user causes or a server sends prints as one
paragraph naming the cause and the fix, without frames, and never the key. A setting
that cannot work stops the code location from loading with one paragraph whatever the
logger. Without the flag Dagster's default console logger prints its traceback under
the paragraph (README, "What the console prints on errors").
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from topo_pipeline.simulator import (
    DEMO_API_KEY,
    NO_SCOPE_API_KEY,
    DatasetSpec,
    FaultPlan,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)
from topo_pipeline_tests.duckdb_holder import hold_duckdb
from topo_pipeline_tests.processes import deployment_env, venv_executable

pytestmark = pytest.mark.slow

DAY = date(2025, 2, 3)
WRONG_KEY = "wrong-key-for-the-cli-0123456789"
KEYS = (WRONG_KEY, NO_SCOPE_API_KEY, DEMO_API_KEY)
CONSOLE_LOGGER = ("--config-json", json.dumps({"loggers": {"console": {}}}))
STEP = "topo/tasks failed: "


@dataclass(frozen=True)
class Cli:
    api: SimulatedTopoApi
    env: Mapping[str, str]
    home: Path


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("cli_errors")
    dataset = generate_dataset(DatasetSpec(seed=9, start_date=DAY, days=1, tasks_per_day=[10]))
    env = deployment_env(home / "dagster_home")
    with SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as api:
        env.update(
            {
                "TOPO_API_BASE_URL": api.base_url,
                "TOPO_API_KEY": DEMO_API_KEY,
                "TOPO_DUCKDB_PATH": str(home / "pipeline.duckdb"),
                "TOPO_ANALYST_DUCKDB_PATH": str(home / "analyst.duckdb"),
                "TOPO_START_DATE": DAY.isoformat(),
                # The step's console lines reach the terminal through a tail process that a
                # busy machine (four test workers) may not have started before the step
                # failed; the README's troubleshooting has users set the same.
                "DAGSTER_COMPUTE_LOG_TAIL_WAIT_AFTER_FINISH": "1",
            }
        )
        yield Cli(api, env, home)


@pytest.fixture
def healthy_api(cli: Cli) -> Iterator[None]:
    """The simulated API healthy again after the test, whatever faults it switched on."""
    yield
    cli.api.faults = FaultPlan()


def materialize(
    cli: Cli, faults: FaultPlan | None = None, *, console_logger: bool = True, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """Run the command with ``faults`` on the API and ``env`` (``None`` unsets) changed."""
    cli.api.faults = faults or FaultPlan()
    environment = {**cli.env, **env}
    return subprocess.run(  # noqa: S603 - fixed argv
        [
            venv_executable("dagster"),
            *("asset", "materialize", "-m", "topo_pipeline.definitions"),
            *("--select", "topo/tasks", "--partition", DAY.isoformat()),
            *(CONSOLE_LOGGER if console_logger else ()),
        ],
        env={key: value for key, value in environment.items() if value is not None},
        cwd=cli.home,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def meaningful_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """Output lines without DEBUG events and Python's warnings about Dagster's own API
    (a ``...Warning: ...`` line and the source line printed under it)."""
    lines: list[str] = []
    after_warning = False
    for line in (done.stdout + done.stderr).splitlines():
        if after_warning and line.startswith("  "):
            after_warning = False
            continue
        after_warning = "Warning: " in line
        if line.strip() and not after_warning and " - DEBUG - " not in line:
            lines.append(line)
    return lines


def the_paragraph(done: subprocess.CompletedProcess[str], *, most_lines: int = 8) -> str:
    """The one paragraph the step's failure printed, after checking the whole output."""
    assert done.returncode != 0
    lines = meaningful_lines(done)
    output = "\n".join(lines)
    assert not any(key in done.stdout + done.stderr for key in KEYS), output
    assert "Stack Trace" not in output
    assert "Traceback" not in output
    assert len(lines) <= most_lines, output
    (paragraph,) = [line for line in lines if line.startswith(STEP)]
    return paragraph


@pytest.mark.parametrize(
    ("env", "faults", "cause", "fix"),
    [
        pytest.param(
            {"TOPO_API_KEY": WRONG_KEY},
            None,
            "The Topo API key was rejected",
            "check TOPO_API_KEY",
            id="401",
        ),
        pytest.param(
            {"TOPO_API_KEY": NO_SCOPE_API_KEY},
            None,
            "The Topo API key lacks the tasks:read scope",
            "create a key with tasks:read and set TOPO_API_KEY to it",
            id="403",
        ),
        pytest.param(
            {},
            FaultPlan(reject_parameter="created_at_after"),
            "Topo refused a request parameter (field: created_at_after",
            "HTTP 400",
            id="400",
        ),
        pytest.param(
            {"TOPO_API_KEY": ""},
            None,
            "",
            "TOPO_API_KEY",
            id="empty-key",
        ),
        pytest.param(
            {},
            FaultPlan(force_429_count=1, retry_after_seconds=3600),
            "Topo asked the pipeline to wait 60 min (3600 s) before trying again",
            "raise TOPO_API_MAX_RETRY_AFTER_SECONDS",
            id="retry-after-too-long",
        ),
        pytest.param(
            {},
            FaultPlan(total_count_override=10**12),
            "Topo reported total_count 1,000,000,000,000",
            "raise TOPO_API_MAX_TASKS_PER_WINDOW",
            id="total-count-out-of-bounds",
        ),
        pytest.param(
            {},
            FaultPlan(naive_timestamps=True),
            "Task ",
            "report it to Topo",
            id="naive-timestamps",
        ),
    ],
)
@pytest.mark.usefixtures("healthy_api")
def test_an_error_prints_as_one_paragraph_naming_the_cause_and_the_fix(
    cli: Cli, env: dict[str, str], faults: FaultPlan | None, cause: str, fix: str
) -> None:
    paragraph = the_paragraph(materialize(cli, faults, **env))

    assert paragraph.startswith(STEP + cause)
    assert fix in paragraph
    assert "Nothing was written" in paragraph


def test_a_missing_key_prints_as_one_paragraph(cli: Cli) -> None:
    paragraph = the_paragraph(materialize(cli, TOPO_API_KEY=None))

    assert paragraph.startswith(STEP + "TOPO_API_KEY is not set")
    assert "Settings → Developers → API Keys" in paragraph


@pytest.mark.usefixtures("healthy_api")
def test_a_lock_timeout_prints_as_one_paragraph(cli: Cli) -> None:
    assert materialize(cli).returncode == 0  # the file exists, with the day in it

    with hold_duckdb(Path(cli.env["TOPO_DUCKDB_PATH"]), read_only=True):
        done = materialize(cli, TOPO_DUCKDB_LOCK_TIMEOUT_SECONDS="1")

    # The run-end publish of the analyst copy meets the same lock: its own paragraph
    # under the run's failure, and the lock-wait line it logs.
    paragraph = the_paragraph(done, most_lines=12)
    assert "stayed locked by another process for 1s" in paragraph
    assert "close other DuckDB sessions" in paragraph


def test_a_bad_setting_is_refused_by_name_when_the_code_location_loads(cli: Cli) -> None:
    done = materialize(cli, TOPO_TIMEZONE="Mars/Base", console_logger=False)

    assert done.returncode != 0
    lines = meaningful_lines(done)
    assert lines[0] == (
        "topo_pipeline cannot load: TOPO_TIMEZONE 'Mars/Base' is not an IANA time zone "
        "(e.g. Europe/Berlin)."
    )
    assert "Traceback" not in done.stderr
    assert len(lines) == 2, lines


def test_a_future_start_date_is_refused_by_name_when_the_code_location_loads(cli: Cli) -> None:
    done = materialize(cli, TOPO_START_DATE="2999-01-01", console_logger=False)

    assert done.returncode != 0
    lines = meaningful_lines(done)
    assert lines[0].startswith("topo_pipeline cannot load: TOPO_START_DATE 2999-01-01 is in the")
    assert "Traceback" not in done.stderr
    assert len(lines) == 2, lines


def test_without_the_console_logger_dagster_prints_its_traceback_under_the_paragraph(
    cli: Cli,
) -> None:
    # Dagster uses a job's console logger only when the run config names it; the default
    # one prints the Failure's frames and its cause's, under the step and the run failure.
    done = materialize(cli, TOPO_API_KEY=WRONG_KEY, console_logger=False)

    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert STEP + "The Topo API key was rejected" in output
    assert "Stack Trace" in output
    assert WRONG_KEY not in output
