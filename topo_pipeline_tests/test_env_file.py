"""The checkout's ``.env``: what ``make demo`` writes, and every entry point reads it alike."""

from __future__ import annotations

from pathlib import Path

from topo_pipeline.env_file import DEMO_SETTINGS, load_env_file, write_demo_env_file
from topo_pipeline.settings import Settings


def test_the_demo_writes_its_settings_once_and_keeps_a_users_file(tmp_path: Path) -> None:
    written = write_demo_env_file(tmp_path)
    assert written == tmp_path / ".env"
    environ: dict[str, str] = {}
    assert load_env_file(tmp_path, environ) == dict(DEMO_SETTINGS)

    written.write_text("TOPO_TIMEZONE=Europe/Berlin\n")
    assert write_demo_env_file(tmp_path) is None
    assert written.read_text() == "TOPO_TIMEZONE=Europe/Berlin\n"


def test_the_file_wins_over_the_shell_as_in_dagsters_commands(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        'TOPO_TIMEZONE="Europe/Berlin"\n# a comment\nTOPO_SLA_HOT_MINUTES=30\n'
    )
    environ = {"TOPO_TIMEZONE": "UTC", "TOPO_START_DATE": "2025-01-01"}
    loaded = load_env_file(tmp_path, environ)
    assert loaded == {"TOPO_TIMEZONE": "Europe/Berlin", "TOPO_SLA_HOT_MINUTES": "30"}
    assert environ == {
        "TOPO_TIMEZONE": "Europe/Berlin",
        "TOPO_START_DATE": "2025-01-01",
        "TOPO_SLA_HOT_MINUTES": "30",
    }


def test_no_file_changes_nothing(tmp_path: Path) -> None:
    environ = {"TOPO_TIMEZONE": "UTC"}
    assert load_env_file(tmp_path, environ) == {}
    assert environ == {"TOPO_TIMEZONE": "UTC"}


def test_the_demo_settings_are_valid_settings(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    write_demo_env_file(tmp_path)
    load_env_file(tmp_path, environ)
    settings = Settings.from_env(environ)
    assert settings.assignees_path is not None
    assert settings.assignees_path.is_file()
    assert settings.working_calendar() is not None
