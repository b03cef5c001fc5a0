"""Settings from the environment: defaults, overrides and refusals that name the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from topo_pipeline.api.config import ClientSettings
from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.declarations import variables
from topo_pipeline.definitions import PLANNED_EVENTS_ENV
from topo_pipeline.defs.console import TRACEBACK_ENV
from topo_pipeline.defs.location import build_defs
from topo_pipeline.defs.resources import TopoApiResource, WarehouseResource
from topo_pipeline.settings import API_KEY_ENV, FetchSettings, Settings, WarehouseSettings
from topo_pipeline.warehouse.analytics import DEFAULT_SLA_TARGET_MINUTES


def test_defaults_match_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.base_url == "https://api.topo.io/v1"
    assert settings.duckdb_path == Path("data/topo_pipeline.duckdb")
    assert settings.analyst_duckdb_path == Path("data/topo_analytics.duckdb")
    assert settings.start_date == date(2024, 1, 1)
    assert settings.timezone == "UTC"
    assert settings.sla_target_minutes == {"HOT": 60, "TODAY": 1440, "EXTRA": 4320}
    # No pacing to tune: the client finds Topo's rate limit itself.
    assert settings.requests_per_minute is None
    assert settings.concurrency == 8
    assert settings.max_retry_after_seconds == 300.0


def test_every_variable_overrides() -> None:
    settings = Settings.from_env(
        {
            "TOPO_API_BASE_URL": "http://127.0.0.1:8765/v1/",
            "TOPO_DUCKDB_PATH": "/srv/topo/a.duckdb",
            "TOPO_ANALYST_DUCKDB_PATH": "/srv/topo/b.duckdb",
            "TOPO_START_DATE": "2025-02-01",
            "TOPO_TIMEZONE": "America/New_York",
            "TOPO_API_REQUESTS_PER_MINUTE": "0",
            "TOPO_API_CONCURRENCY": "3",
            "TOPO_API_TIMEOUT_SECONDS": "5",
            "TOPO_API_MAX_ATTEMPTS": "3",
            "TOPO_SLA_HOT_MINUTES": "30",
        }
    )
    assert settings.duckdb_path == Path("/srv/topo/a.duckdb")
    assert settings.start_date == date(2025, 2, 1)
    assert settings.timezone == "America/New_York"
    assert settings.requests_per_minute is None  # 0 disables pacing
    assert settings.sla_target_minutes["HOT"] == 30
    assert settings.sla_target_minutes["TODAY"] == 1440
    assert settings.base_url == "http://127.0.0.1:8765/v1/"
    assert (settings.concurrency, settings.request_timeout_seconds) == (3, 5.0)
    assert settings.max_attempts == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOPO_API_BASE_URL": "http://api.topo.io/v1"}, "plain http"),
        ({"TOPO_API_BASE_URL": "ftp://api.topo.io/v1"}, "must be an http"),
        ({"TOPO_TIMEZONE": "Mars/Olympus"}, "TOPO_TIMEZONE"),
        ({"TOPO_START_DATE": "01/02/2024"}, "TOPO_START_DATE"),
        ({"TOPO_START_DATE": "2999-01-01"}, "TOPO_START_DATE 2999-01-01 is in the future"),
        ({"TOPO_API_CONCURRENCY": "lots"}, "TOPO_API_CONCURRENCY"),
        ({"TOPO_API_CONCURRENCY": "0"}, "TOPO_API_CONCURRENCY"),
        ({"TOPO_SLA_HOT_MINUTES": "-5"}, "TOPO_SLA_HOT_MINUTES"),
        ({"TOPO_SLA_TODAY_MINUTES": "90.5"}, "TOPO_SLA_TODAY_MINUTES must be a whole number"),
        ({"TOPO_API_MAX_ATTEMPTS": "2.5"}, "TOPO_API_MAX_ATTEMPTS must be a whole number"),
        ({"TOPO_PROGRESS_INTERVAL_SECONDS": "90"}, "TOPO_PROGRESS_INTERVAL_SECONDS"),
        (
            {"TOPO_DUCKDB_PATH": "data/x.duckdb", "TOPO_ANALYST_DUCKDB_PATH": "data/x.duckdb"},
            "different files",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(TopoConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "url", ["http://localhost:9/v1", "http://127.0.0.5/v1", "http://[::1]:80/v1"]
)
def test_plain_http_is_allowed_on_loopback(url: str) -> None:
    assert Settings.from_env({"TOPO_API_BASE_URL": url}).base_url == url


def test_operations_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.schedule_settle_minutes == 30
    assert settings.refresh_window_days == 7
    assert settings.open_tasks_max_age_days == 30
    assert settings.open_tasks_max_partitions_per_tick == 5
    assert settings.open_tasks_min_interval_minutes == 60
    assert settings.open_tasks_sensor_interval_seconds == 300


def test_operations_overrides() -> None:
    settings = Settings.from_env(
        {
            "TOPO_SCHEDULE_SETTLE_MINUTES": "0",  # tick right at local midnight
            "TOPO_REFRESH_WINDOW_DAYS": "1",
            "TOPO_OPEN_TASKS_MAX_AGE_DAYS": "14",
            "TOPO_OPEN_TASKS_MAX_PARTITIONS_PER_TICK": "2",
            "TOPO_OPEN_TASKS_MIN_INTERVAL_MINUTES": "15",
            "TOPO_OPEN_TASKS_SENSOR_INTERVAL_SECONDS": "30",
        }
    )
    assert settings.schedule_settle_minutes == 0
    assert settings.refresh_window_days == 1
    assert settings.open_tasks_max_age_days == 14
    assert settings.open_tasks_max_partitions_per_tick == 2
    assert settings.open_tasks_min_interval_minutes == 15
    assert settings.open_tasks_sensor_interval_seconds == 30


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOPO_SCHEDULE_SETTLE_MINUTES": "-1"}, "TOPO_SCHEDULE_SETTLE_MINUTES must be at least 0"),
        ({"TOPO_SCHEDULE_SETTLE_MINUTES": "1440"}, "must be less than 1440, got '1440'"),
        ({"TOPO_SCHEDULE_SETTLE_MINUTES": "soon"}, "must be a whole number"),
        ({"TOPO_REFRESH_WINDOW_DAYS": "0"}, "TOPO_REFRESH_WINDOW_DAYS must be at least 1"),
        ({"TOPO_OPEN_TASKS_MAX_AGE_DAYS": "0"}, "TOPO_OPEN_TASKS_MAX_AGE_DAYS"),
        ({"TOPO_OPEN_TASKS_MAX_PARTITIONS_PER_TICK": "0"}, "PARTITIONS_PER_TICK"),
        ({"TOPO_OPEN_TASKS_MIN_INTERVAL_MINUTES": "1.5"}, "must be a whole number"),
        ({"TOPO_OPEN_TASKS_SENSOR_INTERVAL_SECONDS": "10"}, "must be at least 30"),
    ],
)
def test_bad_operations_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(TopoConfigError, match=message):
        Settings.from_env(env)


def test_the_code_location_hands_the_settings_to_its_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, "topo-test-key")  # read when the client is built
    settings = Settings.from_env(
        {
            "TOPO_API_BASE_URL": "http://127.0.0.1:9/v1",
            "TOPO_DUCKDB_PATH": str(tmp_path / "p.duckdb"),
            "TOPO_ANALYST_DUCKDB_PATH": str(tmp_path / "a.duckdb"),
            "TOPO_API_REQUESTS_PER_MINUTE": "90",
            "TOPO_API_CONCURRENCY": "3",
            "TOPO_API_TIMEOUT_SECONDS": "7",
            "TOPO_API_MAX_ATTEMPTS": "2",
            "TOPO_API_MAX_RETRY_AFTER_SECONDS": "45",
            "TOPO_API_REQUEST_DEADLINE_SECONDS": "33",
            "TOPO_API_MAX_TASKS_PER_WINDOW": "5000",
            "TOPO_PROGRESS_INTERVAL_SECONDS": "5",
            "TOPO_DUCKDB_LOCK_TIMEOUT_SECONDS": "11",
        }
    )
    resources = build_defs(settings).resources
    api, warehouse = resources["topo_api"], resources["warehouse"]
    # Every fetch setting, under its own name (request_timeout_seconds, not timeout_seconds).
    for name in FetchSettings.model_fields:
        assert getattr(api, name) == getattr(settings, name), name
    assert (api.request_timeout_seconds, api.requests_per_minute) == (7.0, 90.0)
    with api.client() as client:
        for name in ClientSettings.model_fields:
            assert getattr(client.config, name) == getattr(settings, name), name
        assert client.rate.rate_in_force == 90.0
    assert warehouse.database == str(tmp_path / "p.duckdb")
    assert warehouse.analyst_database == str(tmp_path / "a.duckdb")
    assert warehouse.lock_timeout_seconds == 11.0


def test_the_resources_config_is_the_declarations() -> None:
    """A setting declared in FetchSettings or WarehouseSettings is its resource's config
    field, with the same default and description: nothing to write a second time."""
    for resource, declared in [
        (TopoApiResource, FetchSettings),
        (WarehouseResource, WarehouseSettings),
    ]:
        fields = resource.model_fields
        for name, declaration in declared.model_fields.items():
            assert name in fields, (resource, name)
            assert fields[name].default == declaration.default, (resource, name)
            assert fields[name].description == declaration.description, (resource, name)
    assert "timeout_seconds" not in TopoApiResource.model_fields
    defaults = Settings()
    assert WarehouseResource(database="x.duckdb").analyst_database == str(
        defaults.analyst_duckdb_path
    )


def test_every_priority_has_its_sla_setting() -> None:
    declared = variables(Settings)
    for priority in DEFAULT_SLA_TARGET_MINUTES:
        assert f"TOPO_SLA_{priority}_MINUTES" in declared.values(), priority
    assert Settings().sla_target_minutes == DEFAULT_SLA_TARGET_MINUTES
    assert Settings(sla_today_minutes=90).sla_target_minutes["TODAY"] == 90


def test_observability_settings() -> None:
    defaults = Settings.from_env({})
    assert defaults.alert_webhook_url is None
    assert (defaults.ui_base_url, defaults.freshness_deadline_hour) == ("http://127.0.0.1:3000", 6)
    assert defaults.progress_interval_seconds == 15.0
    hook = "https://hooks.slack.com/services/T000/B000/secret-part"
    settings = Settings.from_env(
        {
            "TOPO_ALERT_WEBHOOK_URL": hook,
            "TOPO_UI_BASE_URL": "https://dagster.internal",
            "TOPO_FRESHNESS_DEADLINE_HOUR": "0",
            "TOPO_ANALYST_COPY_MAX_LAG_MINUTES": "30",
            "TOPO_PROGRESS_INTERVAL_SECONDS": "5",
        }
    )
    assert settings.alert_webhook_url == hook
    assert settings.ui_base_url == "https://dagster.internal"
    assert (settings.freshness_deadline_hour, settings.analyst_copy_max_lag_minutes) == (0, 30)
    assert settings.progress_interval_seconds == 5.0
    assert "secret-part" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOPO_ALERT_WEBHOOK_URL": "hooks.slack.com/secret-part"}, "TOPO_ALERT_WEBHOOK_URL"),
        ({"TOPO_UI_BASE_URL": "dagster:3000"}, "TOPO_UI_BASE_URL"),
        ({"TOPO_FRESHNESS_DEADLINE_HOUR": "24"}, "TOPO_FRESHNESS_DEADLINE_HOUR"),
        ({"TOPO_FRESHNESS_DEADLINE_HOUR": "-1"}, "TOPO_FRESHNESS_DEADLINE_HOUR"),
        ({"TOPO_ANALYST_COPY_MAX_LAG_MINUTES": "0"}, "TOPO_ANALYST_COPY_MAX_LAG_MINUTES"),
    ],
)
def test_bad_observability_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(TopoConfigError, match=message) as refused:
        Settings.from_env(env)
    assert "secret-part" not in str(refused.value)


# --- refusals: one paragraph naming the variable, what is allowed, and the meaning --------


def test_a_refusal_names_the_variable_what_is_allowed_the_value_and_the_meaning() -> None:
    with pytest.raises(TopoConfigError) as refused:
        Settings.from_env({"TOPO_API_CONCURRENCY": "0"})
    assert str(refused.value) == (
        "TOPO_API_CONCURRENCY must be at least 1, got '0' — "
        + Settings.model_fields["concurrency"].description
    )


def test_every_refused_value_is_in_the_one_paragraph() -> None:
    with pytest.raises(TopoConfigError) as refused:
        Settings.from_env({"TOPO_API_MAX_ATTEMPTS": "many", "TOPO_REFRESH_WINDOW_DAYS": "0"})
    message = str(refused.value)
    assert "TOPO_API_MAX_ATTEMPTS must be a whole number, got 'many'" in message
    assert "TOPO_REFRESH_WINDOW_DAYS must be at least 1, got '0'" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOPO_API_REQUEST_DEADLINE_SECONDS": "nan"}, "must be a finite number"),
        ({"TOPO_API_MAX_RETRY_AFTER_SECONDS": "-1"}, "must be at least 0, got '-1'"),
        ({"TOPO_DUCKDB_LOCK_TIMEOUT_SECONDS": "0"}, "must be more than 0, got '0'"),
        ({"TOPO_ASSET_OWNERS": " , "}, "TOPO_ASSET_OWNERS must name at least one owner"),
    ],
)
def test_numbers_and_lists_are_checked_against_their_declaration(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(TopoConfigError, match=message):
        Settings.from_env(env)


def test_blank_variables_keep_the_default() -> None:
    assert Settings.from_env({"TOPO_API_CONCURRENCY": "  ", "TOPO_TIMEZONE": ""}) == Settings()


def test_settings_built_in_code_are_checked_alike() -> None:
    with pytest.raises(TopoConfigError, match="TOPO_TIMEZONE 'Mars/Olympus' is not an IANA"):
        Settings(timezone="Mars/Olympus")
    with pytest.raises(TopoConfigError, match="TOPO_API_MAX_ATTEMPTS must be at least 1, got 0"):
        Settings(max_attempts=0)
    with pytest.raises(TopoConfigError, match="timeout_seconds is not a setting"):
        Settings(timeout_seconds=5)  # type: ignore[call-arg]


def test_a_secret_is_never_repeated() -> None:
    secret = "https://hooks.slack.com/services/T000/B000/secret-part"
    settings = Settings.from_env({"TOPO_ALERT_WEBHOOK_URL": secret})
    assert "secret-part" not in repr(settings)
    with pytest.raises(TopoConfigError) as refused:
        Settings(alert_webhook_url=["secret-part"])  # type: ignore[arg-type]
    assert "TOPO_ALERT_WEBHOOK_URL must be a valid string" in str(refused.value)
    assert "secret-part" not in str(refused.value)


def test_a_bad_setting_stops_the_code_location_with_one_paragraph(tmp_path: Path) -> None:
    """topo_pipeline.definitions refuses to load, printing the refusal as a paragraph."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOPO_")},
        "TOPO_API_CONCURRENCY": "0",
        "TOPO_OPEN_TASKS_SENSOR_INTERVAL_SECONDS": "10",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import topo_pipeline.definitions"],
        cwd=tmp_path,  # no .env there
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("topo_pipeline cannot load: TOPO_API_CONCURRENCY must be at least 1")
    assert "TOPO_OPEN_TASKS_SENSOR_INTERVAL_SECONDS must be at least 30, got '10'" in lines[0]
    assert lines[1].startswith("(Nothing ran. Fix the setting and run again;")
    assert len(lines) == 2, lines


# --- the README's configuration table: checked against the declarations ---------------

REPO = Path(__file__).resolve().parent.parent

NOT_SETTINGS = {
    # Read by TopoApiResource when a step builds its client, so that the key never enters
    # Settings, definitions or run config.
    API_KEY_ENV,
    # Read by the console logger as it prints, and when the code location fails to load
    # (before any setting could be read).
    TRACEBACK_ENV,
    # Dagster's own, set by the Makefile (and the second by the code location too).
    "DAGSTER_HOME",
    PLANNED_EVENTS_ENV,
}
"""The README's rows that are no declared setting: variables our settings do not read."""


def readme_configuration_rows() -> dict[str, tuple[str, str]]:
    """Variable → (default, meaning) of each row of the README's configuration table."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([A-Z_]+)` \| (.+?) \| (.+) \|", line)
        if match:
            variable, default, meaning = match.groups()
            assert variable not in rows, f"{variable} has two rows"
            rows[variable] = (default, meaning)
    return rows


def readme_default(value: object) -> str:
    """A declared default as the README writes it: ``unset``, or the value as code."""
    if value is None:
        return "unset"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple):
        value = ",".join(value)
    if isinstance(value, date):
        value = value.isoformat()
    return f"`{value}`"


def test_the_readme_has_a_row_for_every_setting_with_its_default_and_no_other() -> None:
    rows = readme_configuration_rows()
    assert set(variables(Settings)) == set(Settings.model_fields), "a setting without a variable"
    declared = {variables(Settings)[name]: field for name, field in Settings.model_fields.items()}
    assert set(rows) - NOT_SETTINGS == set(declared), "README rows and declarations differ"
    assert set(rows) >= NOT_SETTINGS
    for variable, field in declared.items():
        default, meaning = rows[variable]
        assert default == readme_default(field.default), variable
        assert meaning.strip(), variable


def test_live_and_sla_alert_settings() -> None:
    defaults = Settings.from_env({})
    assert defaults.live_refresh_minutes == 10
    assert defaults.sla_warning_minutes == 15
    assert defaults.sla_alert_priorities == ("HOT",)
    assert defaults.task_url_template is None
    settings = Settings.from_env(
        {
            "TOPO_LIVE_REFRESH_MINUTES": "0",
            "TOPO_SLA_WARNING_MINUTES": "30",
            "TOPO_SLA_ALERT_PRIORITIES": "hot, TODAY",
            "TOPO_TASK_URL_TEMPLATE": "https://app.topo.io/tasks/{id}",
        }
    )
    assert settings.live_refresh_minutes == 0  # off
    assert settings.sla_warning_minutes == 30
    assert settings.sla_alert_priorities == ("HOT", "TODAY")
    assert settings.task_url_template == "https://app.topo.io/tasks/{id}"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOPO_LIVE_REFRESH_MINUTES": "-1"}, "TOPO_LIVE_REFRESH_MINUTES must be at least 0"),
        ({"TOPO_LIVE_REFRESH_MINUTES": "2000"}, "TOPO_LIVE_REFRESH_MINUTES must be at most 1440"),
        ({"TOPO_SLA_WARNING_MINUTES": "soon"}, "TOPO_SLA_WARNING_MINUTES must be a whole"),
        ({"TOPO_SLA_ALERT_PRIORITIES": "HOT,URGENT"}, "names URGENT, which has no SLA target"),
        ({"TOPO_TASK_URL_TEMPLATE": "https://app.topo.io/tasks/"}, "TOPO_TASK_URL_TEMPLATE"),
        ({"TOPO_TASK_URL_TEMPLATE": "app.topo.io/tasks/{id}"}, "TOPO_TASK_URL_TEMPLATE"),
    ],
)
def test_bad_live_and_sla_alert_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(TopoConfigError, match=message):
        Settings.from_env(env)
