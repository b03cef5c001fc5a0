"""The pipeline's settings, read from ``TOPO_*`` environment variables in one place.

:func:`Settings.from_env` validates everything up front so a bad value fails when the code
location loads, naming the variable, instead of deep inside a run. The API key is not part
of :class:`Settings`: the API resource reads ``TOPO_API_KEY`` when a step builds its client,
so the key never appears in definitions, config or the UI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from topo_pipeline.api.client import DEFAULT_BASE_URL, ClientConfig, validate_base_url
from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.defs.progress import DEFAULT_INTERVAL_SECONDS, MAX_SILENCE_SECONDS
from topo_pipeline.warehouse.analytics import DEFAULT_SLA_TARGET_MINUTES
from topo_pipeline.warehouse.business_hours import (
    WorkingCalendar,
    parse_business_hours,
    read_holidays,
)
from topo_pipeline.warehouse.duckdb import DEFAULT_LOCK_TIMEOUT_SECONDS

API_KEY_ENV = "TOPO_API_KEY"


_CLIENT_DEFAULTS = ClientConfig()
"""The client's own defaults are the settings' defaults."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable without editing code (see the README's configuration table)."""

    api_base_url: str = DEFAULT_BASE_URL
    duckdb_path: Path = Path("data/topo_pipeline.duckdb")
    analyst_duckdb_path: Path = Path("data/topo_analytics.duckdb")
    start_date: date = date(2024, 1, 1)
    timezone: str = "UTC"
    requests_per_minute: float | None = _CLIENT_DEFAULTS.requests_per_minute
    concurrency: int = _CLIENT_DEFAULTS.concurrency
    request_timeout_seconds: float = _CLIENT_DEFAULTS.read_timeout
    max_attempts: int = _CLIENT_DEFAULTS.max_attempts
    max_retry_after_seconds: float = _CLIENT_DEFAULTS.max_retry_after
    request_deadline_seconds: float = _CLIENT_DEFAULTS.request_deadline
    max_tasks_per_window: int = _CLIENT_DEFAULTS.max_tasks_per_window
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    sla_target_minutes: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_SLA_TARGET_MINUTES)
    )
    # Reference data: the assignee directory (names and teams); None means none.
    assignees_path: Path | None = None
    # Business-hours SLAs: the working calendar (TOPO_TIMEZONE) and holidays; None: none.
    business_hours: str | None = None
    holidays_path: Path | None = None
    # Operations: the daily schedule and the open-task sensor.
    schedule_settle_minutes: int = 30
    refresh_window_days: int = 7
    open_tasks_max_age_days: int = 30
    open_tasks_max_partitions_per_tick: int = 5
    open_tasks_min_interval_minutes: int = 60
    open_tasks_sensor_interval_seconds: int = 300
    # Observability: progress lines of a long fetch, failure alerts, freshness.
    progress_interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    # A Slack webhook URL is a credential: kept out of reprs.
    alert_webhook_url: str | None = field(default=None, repr=False)
    ui_base_url: str = "http://127.0.0.1:3000"
    freshness_deadline_hour: int = 6
    analyst_copy_max_lag_minutes: int = 120
    # Live: today's partition refreshed every few minutes; SLA alerts on open tasks.
    live_refresh_minutes: int = 10
    sla_warning_minutes: int = 15
    sla_alert_priorities: tuple[str, ...] = ("HOT",)
    # Where a task opens in Topo's app, "{id}" standing for the task id; None: the id alone.
    task_url_template: str | None = None
    # Catalog: who answers for the assets (emails or team:name, as Dagster takes them).
    asset_owners: tuple[str, ...] = ("team:data-engineering",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: the process environment).

        Raises:
            TopoConfigError: naming the variable whose value cannot work.
        """
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        defaults = cls()
        settings = cls(
            api_base_url=reader.text("TOPO_API_BASE_URL", defaults.api_base_url),
            duckdb_path=Path(reader.text("TOPO_DUCKDB_PATH", str(defaults.duckdb_path))),
            analyst_duckdb_path=Path(
                reader.text("TOPO_ANALYST_DUCKDB_PATH", str(defaults.analyst_duckdb_path))
            ),
            start_date=reader.date("TOPO_START_DATE", defaults.start_date),
            timezone=reader.text("TOPO_TIMEZONE", defaults.timezone),
            requests_per_minute=reader.number(
                "TOPO_API_REQUESTS_PER_MINUTE", defaults.requests_per_minute or 0, zero_ok=True
            )
            or None,
            concurrency=reader.integer("TOPO_API_CONCURRENCY", defaults.concurrency),
            request_timeout_seconds=reader.number(
                "TOPO_API_TIMEOUT_SECONDS", defaults.request_timeout_seconds
            ),
            max_attempts=reader.integer("TOPO_API_MAX_ATTEMPTS", defaults.max_attempts),
            max_retry_after_seconds=reader.number(
                "TOPO_API_MAX_RETRY_AFTER_SECONDS", defaults.max_retry_after_seconds, zero_ok=True
            ),
            request_deadline_seconds=reader.number(
                "TOPO_API_REQUEST_DEADLINE_SECONDS", defaults.request_deadline_seconds
            ),
            max_tasks_per_window=reader.integer(
                "TOPO_API_MAX_TASKS_PER_WINDOW", defaults.max_tasks_per_window
            ),
            lock_timeout_seconds=reader.number(
                "TOPO_DUCKDB_LOCK_TIMEOUT_SECONDS", defaults.lock_timeout_seconds
            ),
            sla_target_minutes={
                priority: reader.integer(f"TOPO_SLA_{priority}_MINUTES", minutes)
                for priority, minutes in DEFAULT_SLA_TARGET_MINUTES.items()
            },
            assignees_path=reader.path("TOPO_ASSIGNEES_PATH"),
            business_hours=reader.text("TOPO_BUSINESS_HOURS", "") or None,
            holidays_path=reader.path("TOPO_HOLIDAYS_PATH"),
            schedule_settle_minutes=reader.integer(
                "TOPO_SCHEDULE_SETTLE_MINUTES", defaults.schedule_settle_minutes, minimum=0
            ),
            refresh_window_days=reader.integer(
                "TOPO_REFRESH_WINDOW_DAYS", defaults.refresh_window_days
            ),
            open_tasks_max_age_days=reader.integer(
                "TOPO_OPEN_TASKS_MAX_AGE_DAYS", defaults.open_tasks_max_age_days
            ),
            open_tasks_max_partitions_per_tick=reader.integer(
                "TOPO_OPEN_TASKS_MAX_PARTITIONS_PER_TICK",
                defaults.open_tasks_max_partitions_per_tick,
            ),
            open_tasks_min_interval_minutes=reader.integer(
                "TOPO_OPEN_TASKS_MIN_INTERVAL_MINUTES", defaults.open_tasks_min_interval_minutes
            ),
            open_tasks_sensor_interval_seconds=reader.integer(
                "TOPO_OPEN_TASKS_SENSOR_INTERVAL_SECONDS",
                defaults.open_tasks_sensor_interval_seconds,
            ),
            progress_interval_seconds=reader.number(
                "TOPO_PROGRESS_INTERVAL_SECONDS", defaults.progress_interval_seconds
            ),
            alert_webhook_url=reader.text("TOPO_ALERT_WEBHOOK_URL", "") or None,
            ui_base_url=reader.text("TOPO_UI_BASE_URL", defaults.ui_base_url),
            freshness_deadline_hour=reader.integer(
                "TOPO_FRESHNESS_DEADLINE_HOUR", defaults.freshness_deadline_hour, minimum=0
            ),
            analyst_copy_max_lag_minutes=reader.integer(
                "TOPO_ANALYST_COPY_MAX_LAG_MINUTES", defaults.analyst_copy_max_lag_minutes
            ),
            asset_owners=reader.items("TOPO_ASSET_OWNERS", defaults.asset_owners),
            live_refresh_minutes=reader.integer(
                "TOPO_LIVE_REFRESH_MINUTES", defaults.live_refresh_minutes, minimum=0
            ),
            sla_warning_minutes=reader.integer(
                "TOPO_SLA_WARNING_MINUTES", defaults.sla_warning_minutes, minimum=0
            ),
            sla_alert_priorities=tuple(
                priority.upper()
                for priority in reader.items(
                    "TOPO_SLA_ALERT_PRIORITIES", defaults.sla_alert_priorities
                )
            ),
            task_url_template=reader.text("TOPO_TASK_URL_TEMPLATE", "") or None,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check the values that can be wrong in ways the types do not catch.

        Raises:
            TopoConfigError: naming the setting.
        """
        validate_base_url(self.api_base_url)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise TopoConfigError(
                f"TOPO_TIMEZONE {self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)"
            ) from None
        today = datetime.now(ZoneInfo(self.timezone)).date()
        if self.start_date > today:
            # Dagster would only fail later, with a partition-subset error naming no setting.
            raise TopoConfigError(
                f"TOPO_START_DATE {self.start_date.isoformat()} is in the future (today is "
                f"{today.isoformat()} in {self.timezone}): there is no day to fetch yet; set "
                "it to the first past day to backfill, e.g. 2024-01-01"
            )
        if self.duckdb_path.resolve() == self.analyst_duckdb_path.resolve():
            raise TopoConfigError(
                "TOPO_DUCKDB_PATH and TOPO_ANALYST_DUCKDB_PATH must be different files"
            )
        self.working_calendar()  # raises naming TOPO_BUSINESS_HOURS or TOPO_HOLIDAYS_PATH
        if self.assignees_path is not None and not self.assignees_path.is_file():
            raise TopoConfigError(
                f"TOPO_ASSIGNEES_PATH {str(self.assignees_path)!r} is not a file (a CSV with "
                "columns user_id,name,team; leave the variable unset for no directory)"
            )
        if self.concurrency < 1:
            raise TopoConfigError("TOPO_API_CONCURRENCY must be at least 1")
        if self.max_attempts < 1:
            raise TopoConfigError("TOPO_API_MAX_ATTEMPTS must be at least 1")
        if not 0 <= self.schedule_settle_minutes < 24 * 60:
            # The schedule ticks once a day at local midnight plus this delay.
            raise TopoConfigError(
                "TOPO_SCHEDULE_SETTLE_MINUTES must be from 0 to 1439 (less than a day)"
            )
        if not 0 < self.progress_interval_seconds <= MAX_SILENCE_SECONDS:
            raise TopoConfigError(
                "TOPO_PROGRESS_INTERVAL_SECONDS must be more than 0 and at most "
                f"{MAX_SILENCE_SECONDS:.0f} (a fetch logs progress at least once a minute)"
            )
        if self.alert_webhook_url is not None and not _is_http_url(self.alert_webhook_url):
            # Never echo the value: a webhook URL carries its own credential.
            raise TopoConfigError("TOPO_ALERT_WEBHOOK_URL must be an http(s) URL")
        if not _is_http_url(self.ui_base_url):
            raise TopoConfigError(
                f"TOPO_UI_BASE_URL must be an http(s) URL such as http://127.0.0.1:3000, "
                f"got {self.ui_base_url!r}"
            )
        if not 0 <= self.freshness_deadline_hour <= 23:
            raise TopoConfigError("TOPO_FRESHNESS_DEADLINE_HOUR must be an hour from 0 to 23")
        for owner in self.asset_owners:
            if not (owner.startswith("team:") and len(owner) > 5) and "@" not in owner:
                raise TopoConfigError(
                    f"TOPO_ASSET_OWNERS holds {owner!r}: each owner is an email address or "
                    "team:<name>, separated by commas"
                )
        if self.live_refresh_minutes > 24 * 60:
            raise TopoConfigError(
                "TOPO_LIVE_REFRESH_MINUTES must be from 0 (off) to 1440 minutes, got "
                f"{self.live_refresh_minutes}"
            )
        unknown = [p for p in self.sla_alert_priorities if p not in self.sla_target_minutes]
        if unknown:
            raise TopoConfigError(
                f"TOPO_SLA_ALERT_PRIORITIES names {', '.join(unknown)}, which has no SLA target: "
                f"use some of {', '.join(self.sla_target_minutes)}, separated by commas"
            )
        if self.task_url_template is not None and (
            "{id}" not in self.task_url_template
            or not _is_http_url(self.task_url_template.replace("{id}", "x"))
        ):
            raise TopoConfigError(
                "TOPO_TASK_URL_TEMPLATE must be an http(s) URL holding {id}, e.g. "
                f"https://app.topo.io/tasks/{{id}}, got {self.task_url_template!r}"
            )
        if self.open_tasks_sensor_interval_seconds < 30:
            # The daemon evaluates sensors about every 30 s; less only adds load.
            raise TopoConfigError("TOPO_OPEN_TASKS_SENSOR_INTERVAL_SECONDS must be at least 30")

    def working_calendar(self) -> WorkingCalendar | None:
        """The business-hours calendar (holidays read from their file), or ``None``.

        Raises:
            TopoConfigError: naming TOPO_BUSINESS_HOURS or TOPO_HOLIDAYS_PATH.
        """
        if self.business_hours is None:
            if self.holidays_path is not None:
                raise TopoConfigError(
                    "TOPO_HOLIDAYS_PATH is set but TOPO_BUSINESS_HOURS is not: holidays only "
                    "apply to business hours (e.g. TOPO_BUSINESS_HOURS='Mon-Fri 09:00-18:00')"
                )
            return None
        try:
            calendar = parse_business_hours(self.business_hours)
        except ValueError as error:
            raise TopoConfigError(f"TOPO_BUSINESS_HOURS: {error}") from None
        if self.holidays_path is None:
            return calendar
        if not self.holidays_path.is_file():
            raise TopoConfigError(
                f"TOPO_HOLIDAYS_PATH {str(self.holidays_path)!r} is not a file (a CSV with a "
                "date column)"
            )
        try:
            holidays = read_holidays(self.holidays_path)
        except ValueError as error:
            raise TopoConfigError(f"TOPO_HOLIDAYS_PATH: {error}") from None
        return replace(calendar, holidays=holidays)


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class _Reader:
    env: Mapping[str, str]

    def text(self, name: str, default: str) -> str:
        value = self.env.get(name, "").strip()
        return value or default

    def items(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.env.get(name, "")
        found = tuple(item.strip() for item in value.split(",") if item.strip())
        return found or default

    def path(self, name: str) -> Path | None:
        value = self.env.get(name, "").strip()
        return Path(value) if value else None

    def date(self, name: str, default: date) -> date:
        value = self.env.get(name, "").strip()
        if not value:
            return default
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise TopoConfigError(f"{name} must be a date like 2024-01-01, got {value!r}") from None

    def number(self, name: str, default: float, *, zero_ok: bool = False) -> float:
        value = self.env.get(name, "").strip()
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            raise TopoConfigError(f"{name} must be a number, got {value!r}") from None
        if number < 0 or (number == 0 and not zero_ok) or number != number:
            raise TopoConfigError(f"{name} must be a positive number, got {value!r}")
        return number

    def integer(self, name: str, default: int, *, minimum: int = 1) -> int:
        value = self.env.get(name, "").strip()
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            raise TopoConfigError(f"{name} must be a whole number, got {value!r}") from None
        if number < minimum:
            raise TopoConfigError(f"{name} must be at least {minimum}, got {value!r}")
        return number
