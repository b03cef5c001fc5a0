"""Settings from the environment: defaults, overrides and refusals that name the variable."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.defs.location import build_defs
from topo_pipeline.settings import Settings


def test_defaults_match_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.api_base_url == "https://api.topo.io/v1"
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
    assert settings.api_base_url == "http://127.0.0.1:8765/v1/"
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
    assert Settings.from_env({"TOPO_API_BASE_URL": url}).api_base_url == url


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
        ({"TOPO_SCHEDULE_SETTLE_MINUTES": "1440"}, "less than a day"),
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


def test_the_code_location_hands_the_settings_to_its_resources(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "TOPO_API_BASE_URL": "http://127.0.0.1:9/v1",
            "TOPO_DUCKDB_PATH": str(tmp_path / "p.duckdb"),
            "TOPO_API_REQUESTS_PER_MINUTE": "90",
            "TOPO_API_CONCURRENCY": "3",
            "TOPO_API_TIMEOUT_SECONDS": "7",
            "TOPO_API_MAX_ATTEMPTS": "2",
            "TOPO_API_MAX_RETRY_AFTER_SECONDS": "45",
            "TOPO_API_REQUEST_DEADLINE_SECONDS": "33",
            "TOPO_API_MAX_TASKS_PER_WINDOW": "5000",
            "TOPO_DUCKDB_LOCK_TIMEOUT_SECONDS": "11",
        }
    )
    resources = build_defs(settings).resources
    api, warehouse = resources["topo_api"], resources["warehouse"]
    assert (api.base_url, api.requests_per_minute, api.concurrency) == (
        "http://127.0.0.1:9/v1",
        90.0,
        3,
    )
    assert (api.timeout_seconds, api.max_attempts, api.max_retry_after_seconds) == (7.0, 2, 45.0)
    with api.client() as client:
        assert client.config.max_retry_after == 45.0
        assert client.config.request_deadline == 33.0
        assert client.config.max_tasks_per_window == 5000
        assert client.rate.requests_per_minute == 90.0
    assert warehouse.database == str(tmp_path / "p.duckdb")
    assert warehouse.lock_timeout_seconds == 11.0


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
        ({"TOPO_LIVE_REFRESH_MINUTES": "2000"}, "TOPO_LIVE_REFRESH_MINUTES must be from 0"),
        ({"TOPO_SLA_WARNING_MINUTES": "soon"}, "TOPO_SLA_WARNING_MINUTES must be a whole"),
        ({"TOPO_SLA_ALERT_PRIORITIES": "HOT,URGENT"}, "names URGENT, which has no SLA target"),
        ({"TOPO_TASK_URL_TEMPLATE": "https://app.topo.io/tasks/"}, "TOPO_TASK_URL_TEMPLATE"),
        ({"TOPO_TASK_URL_TEMPLATE": "app.topo.io/tasks/{id}"}, "TOPO_TASK_URL_TEMPLATE"),
    ],
)
def test_bad_live_and_sla_alert_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(TopoConfigError, match=message):
        Settings.from_env(env)
