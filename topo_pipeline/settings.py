"""The pipeline's settings: each declared once, read from ``TOPO_*`` environment variables.

:class:`Settings` declares every setting with
:func:`~topo_pipeline.declarations.setting` (name, type, default, bounds, variable,
meaning); the client's are declared in :class:`~topo_pipeline.api.config.ClientSettings`
and inherited. :meth:`Settings.from_env` validates everything up front, so a bad value
fails when the code location loads, with a message naming the variable, instead of deep
inside a run. The resources take their config from the declarations (``TopoApiResource``
inherits :class:`FetchSettings`, ``WarehouseResource`` :class:`WarehouseSettings`), and
``test_settings.py`` checks the README's configuration table against them.

A new setting is one declaration in :class:`Settings` (in a group a resource inherits, if
a resource uses it; in ``ClientSettings`` for a knob of the client) plus its row in the
README's table::

    report_path: Path = setting(
        Path("data/topo_report.html"), env="TOPO_REPORT_PATH", meaning="where the report goes"
    )

The API key is not part of :class:`Settings`: the API resource reads ``TOPO_API_KEY`` when a
step builds its client, so the key never appears in definitions, config or the UI.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, field_validator, model_validator

from topo_pipeline.api.config import ClientSettings
from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.declarations import (
    SETTINGS_CONFIG,
    CommaSeparated,
    DeclaredSettings,
    setting,
)
from topo_pipeline.warehouse.analytics import DEFAULT_SLA_TARGET_MINUTES
from topo_pipeline.warehouse.business_hours import (
    WorkingCalendar,
    parse_business_hours,
    read_holidays,
)
from topo_pipeline.warehouse.duckdb import DEFAULT_LOCK_TIMEOUT_SECONDS

API_KEY_ENV = "TOPO_API_KEY"

MAX_SILENCE_SECONDS = 60.0
"""Longest a running fetch goes without a progress line."""

DEFAULT_INTERVAL_SECONDS = 15.0
"""Shortest gap between two progress lines (``TOPO_PROGRESS_INTERVAL_SECONDS``)."""


class FetchSettings(ClientSettings):
    """What a fetch of ``topo/tasks`` is configured with: the client's settings and its
    progress lines. ``TopoApiResource`` inherits these fields as its config."""

    progress_interval_seconds: float = setting(
        DEFAULT_INTERVAL_SECONDS,
        env="TOPO_PROGRESS_INTERVAL_SECONDS",
        gt=0,
        le=MAX_SILENCE_SECONDS,
        meaning="shortest gap between two progress lines of a fetch in the run log (a running "
        "fetch logs at least once a minute)",
    )


class WarehouseSettings(BaseModel):
    """What a connection to the pipeline's DuckDB file is configured with, beside its path.
    ``WarehouseResource`` inherits these fields as its config."""

    model_config = SETTINGS_CONFIG

    lock_timeout_seconds: float = setting(
        DEFAULT_LOCK_TIMEOUT_SECONDS,
        env="TOPO_DUCKDB_LOCK_TIMEOUT_SECONDS",
        gt=0,
        meaning="how long a step waits for the DuckDB file lock before failing",
    )


class Settings(DeclaredSettings, FetchSettings, WarehouseSettings):
    """Everything configurable without editing code (the README's configuration table).

    Frozen. ``Settings(timezone="Europe/Berlin", ...)`` takes Python values by field name,
    :meth:`from_env` the ``TOPO_*`` variables; both refuse a bad value with a
    :class:`TopoConfigError` naming the variable. ``settings.model_copy(update={...})``
    makes a changed copy.
    """

    # --- the pipeline's files and partitions ------------------------------------------
    duckdb_path: Path = setting(
        Path("data/topo_pipeline.duckdb"),
        env="TOPO_DUCKDB_PATH",
        meaning="the pipeline's own DuckDB file; only the pipeline writes it",
    )
    analyst_duckdb_path: Path = setting(
        Path("data/topo_analytics.duckdb"),
        env="TOPO_ANALYST_DUCKDB_PATH",
        meaning="the published copy analysts open, a file other than TOPO_DUCKDB_PATH",
    )
    report_path: Path | None = setting(
        None,
        env="TOPO_REPORT_PATH",
        meaning="the managers' SLA report (HTML), rewritten at every publish; unset: "
        "sla_report.html beside the analyst copy",
    )
    start_date: date = setting(
        date(2024, 1, 1), env="TOPO_START_DATE", meaning="the first daily partition (YYYY-MM-DD)"
    )
    timezone: str = setting(
        "UTC",
        env="TOPO_TIMEZONE",
        meaning="the IANA time zone whose calendar days are the partitions",
    )
    # --- SLA targets, one per priority of DEFAULT_SLA_TARGET_MINUTES --------------------
    sla_hot_minutes: int = setting(
        DEFAULT_SLA_TARGET_MINUTES["HOT"],
        env="TOPO_SLA_HOT_MINUTES",
        ge=1,
        meaning="SLA target of HOT tasks, in minutes",
    )
    sla_today_minutes: int = setting(
        DEFAULT_SLA_TARGET_MINUTES["TODAY"],
        env="TOPO_SLA_TODAY_MINUTES",
        ge=1,
        meaning="SLA target of TODAY tasks, in minutes",
    )
    sla_extra_minutes: int = setting(
        DEFAULT_SLA_TARGET_MINUTES["EXTRA"],
        env="TOPO_SLA_EXTRA_MINUTES",
        ge=1,
        meaning="SLA target of EXTRA tasks, in minutes",
    )
    # --- reference data and business hours (None: none) ---------------------------------
    assignees_path: Path | None = setting(
        None,
        env="TOPO_ASSIGNEES_PATH",
        meaning="the assignee directory, a CSV with columns user_id,name,team",
    )
    business_hours: str | None = setting(
        None,
        env="TOPO_BUSINESS_HOURS",
        meaning="working hours of business-hours SLAs in TOPO_TIMEZONE, like Mon-Fri 09:00-18:00",
    )
    holidays_path: Path | None = setting(
        None,
        env="TOPO_HOLIDAYS_PATH",
        meaning="with TOPO_BUSINESS_HOURS, a CSV with a date column of days without working hours",
    )
    # --- operations: the daily schedule and the open-task sensor ------------------------
    schedule_settle_minutes: int = setting(
        30,
        env="TOPO_SCHEDULE_SETTLE_MINUTES",
        ge=0,
        lt=24 * 60,
        meaning="how long after local midnight the daily schedule ticks (less than a day)",
    )
    refresh_window_days: int = setting(
        7,
        env="TOPO_REFRESH_WINDOW_DAYS",
        ge=1,
        meaning="days the daily run covers, ending with the day that just ended",
    )
    open_tasks_max_age_days: int = setting(
        30,
        env="TOPO_OPEN_TASKS_MAX_AGE_DAYS",
        ge=1,
        meaning="the oldest day the open-task sensor looks at, in days",
    )
    open_tasks_max_partitions_per_tick: int = setting(
        5,
        env="TOPO_OPEN_TASKS_MAX_PARTITIONS_PER_TICK",
        ge=1,
        meaning="days the open-task sensor requests per tick",
    )
    open_tasks_min_interval_minutes: int = setting(
        60,
        env="TOPO_OPEN_TASKS_MIN_INTERVAL_MINUTES",
        ge=1,
        meaning="the shortest time between two requests of a day by the open-task sensor",
    )
    open_tasks_sensor_interval_seconds: int = setting(
        300,
        env="TOPO_OPEN_TASKS_SENSOR_INTERVAL_SECONDS",
        # The daemon evaluates sensors about every 30 s; less only adds load.
        ge=30,
        meaning="how often the open-task sensor runs",
    )
    # --- observability: failure alerts, freshness ---------------------------------------
    alert_webhook_url: str | None = setting(
        None,
        env="TOPO_ALERT_WEBHOOK_URL",
        secret=True,  # a webhook URL carries its own credential
        meaning="a Slack-compatible webhook that hears about every failed run",
    )
    ui_base_url: str = setting(
        "http://127.0.0.1:3000",
        env="TOPO_UI_BASE_URL",
        meaning="the Dagster UI's address, for the run links in alerts",
    )
    freshness_deadline_hour: int = setting(
        6,
        env="TOPO_FRESHNESS_DEADLINE_HOUR",
        ge=0,
        le=23,
        meaning="the hour of the day (TOPO_TIMEZONE) by which yesterday must have landed",
    )
    analyst_copy_max_lag_minutes: int = setting(
        120,
        env="TOPO_ANALYST_COPY_MAX_LAG_MINUTES",
        ge=1,
        meaning="how much older than the pipeline's newest change the analyst copy may be",
    )
    # --- live: today refreshed every few minutes, SLA alerts on open tasks ---------------
    live_refresh_minutes: int = setting(
        10,
        env="TOPO_LIVE_REFRESH_MINUTES",
        ge=0,
        le=24 * 60,
        meaning="how often today's partition is refreshed under the daemon, in minutes; 0: off",
    )
    sla_warning_minutes: int = setting(
        15,
        env="TOPO_SLA_WARNING_MINUTES",
        ge=0,
        meaning="how long before its deadline an open task is at risk (analytics.sla_watch, "
        "alerts), in minutes",
    )
    sla_alert_priorities: CommaSeparated = setting(
        ("HOT",),
        env="TOPO_SLA_ALERT_PRIORITIES",
        meaning="the priorities whose tasks at risk or breached are posted to the webhook, "
        "comma-separated",
    )
    task_url_template: str | None = setting(
        None,
        env="TOPO_TASK_URL_TEMPLATE",
        meaning="where a task opens in Topo's app, {id} standing for its id, e.g. "
        "https://app.topo.io/tasks/{id}; unset: alerts show the id alone",
    )
    # --- catalog -----------------------------------------------------------------------
    asset_owners: CommaSeparated = setting(
        ("team:data-engineering",),
        env="TOPO_ASSET_OWNERS",
        meaning="who answers for every asset: email addresses or team:<name>, comma-separated",
    )

    @property
    def sla_target_minutes(self) -> dict[str, int]:
        """SLA target in minutes per priority (``TOPO_SLA_<PRIORITY>_MINUTES``)."""
        return {
            "HOT": self.sla_hot_minutes,
            "TODAY": self.sla_today_minutes,
            "EXTRA": self.sla_extra_minutes,
        }

    @field_validator("timezone")
    @classmethod
    def known_time_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{zone!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return zone

    @field_validator("assignees_path")
    @classmethod
    def assignees_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(
                f"{str(path)!r} is not a file (a CSV with columns user_id,name,team; leave the "
                "variable unset for no directory)"
            )
        return path

    @field_validator("alert_webhook_url")
    @classmethod
    def webhook_url(cls, url: str | None) -> str | None:
        if url is not None and not _is_http_url(url):
            raise ValueError("must be an http(s) URL")  # never echoed: it is a credential
        return url

    @field_validator("sla_alert_priorities")
    @classmethod
    def upper_priorities(cls, priorities: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(priority.upper() for priority in priorities)

    @field_validator("task_url_template")
    @classmethod
    def task_url(cls, template: str | None) -> str | None:
        if template is not None and (
            "{id}" not in template or not _is_http_url(template.replace("{id}", "x"))
        ):
            raise ValueError(
                "must be an http(s) URL holding {id}, e.g. https://app.topo.io/tasks/{id}, "
                f"got {template!r}"
            )
        return template

    @field_validator("ui_base_url")
    @classmethod
    def ui_url(cls, url: str) -> str:
        if not _is_http_url(url):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:3000, got {url!r}")
        return url

    @field_validator("asset_owners")
    @classmethod
    def owners(cls, owners: tuple[str, ...]) -> tuple[str, ...]:
        if not owners:
            raise ValueError("must name at least one owner: an email address or team:<name>")
        for owner in owners:
            if not (owner.startswith("team:") and len(owner) > 5) and "@" not in owner:
                raise ValueError(
                    f"holds {owner!r}: each owner is an email address or team:<name>, "
                    "separated by commas"
                )
        return owners

    @model_validator(mode="after")
    def consistent(self) -> Settings:
        """The checks of several settings together, and of the world (files, today)."""
        today = datetime.now(ZoneInfo(self.timezone)).date()
        if self.start_date > today:
            # Dagster would only fail later, with a partition-subset error naming no setting.
            raise ValueError(
                f"TOPO_START_DATE {self.start_date.isoformat()} is in the future (today is "
                f"{today.isoformat()} in {self.timezone}): there is no day to fetch yet; set "
                "it to the first past day to backfill, e.g. 2024-01-01"
            )
        if self.duckdb_path.resolve() == self.analyst_duckdb_path.resolve():
            raise ValueError(
                "TOPO_DUCKDB_PATH and TOPO_ANALYST_DUCKDB_PATH must be different files"
            )
        self.working_calendar()  # raises naming TOPO_BUSINESS_HOURS or TOPO_HOLIDAYS_PATH
        unknown = [p for p in self.sla_alert_priorities if p not in self.sla_target_minutes]
        if unknown:
            raise ValueError(
                f"TOPO_SLA_ALERT_PRIORITIES names {', '.join(unknown)}, which has no SLA target: "
                f"use some of {', '.join(self.sla_target_minutes)}, separated by commas"
            )
        return self

    @property
    def report_file(self) -> Path:
        """The SLA report's file: ``TOPO_REPORT_PATH``, else beside the analyst copy."""
        return self.report_path or self.analyst_duckdb_path.with_name("sla_report.html")

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
