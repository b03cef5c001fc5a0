"""``prepare_dagster_home``: the instance folder ``make dev`` and ``make demo`` share."""

from __future__ import annotations

from pathlib import Path

import pytest

from topo_pipeline.instance import (
    DEFAULT_DAGSTER_HOME,
    INSTANCE_YAML,
    REPO_ROOT,
    prepare_dagster_home,
)


def test_a_new_home_gets_the_repository_settings(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path / "home")}

    home = prepare_dagster_home(env)

    assert home.path == tmp_path / "home"
    assert home.config == "created"
    assert (home.path / "dagster.yaml").read_bytes() == INSTANCE_YAML.read_bytes()
    assert env["DAGSTER_HOME"] == str(home.path)


def test_an_up_to_date_home_is_left_alone(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path)}
    prepare_dagster_home(env)
    (tmp_path / "history").mkdir()  # state Dagster keeps there

    home = prepare_dagster_home(env)

    assert home.config == "unchanged"
    assert home.backup is None
    assert (tmp_path / "history").is_dir()
    assert not (tmp_path / "dagster.yaml.bak").exists()


def test_changed_settings_are_replaced_and_the_old_file_kept(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")

    home = prepare_dagster_home({"DAGSTER_HOME": str(tmp_path)})

    assert home.config == "updated"
    assert home.backup == tmp_path / "dagster.yaml.bak"
    assert home.backup.read_text() == "telemetry:\n  enabled: true\n"
    assert (tmp_path / "dagster.yaml").read_bytes() == INSTANCE_YAML.read_bytes()
    assert str(home.backup) in home.describe()


def test_a_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Dagster refuses a relative DAGSTER_HOME; child processes may run elsewhere.
    monkeypatch.chdir(tmp_path)
    env = {"DAGSTER_HOME": "state/dagster"}

    home = prepare_dagster_home(env)

    assert home.path == tmp_path / "state" / "dagster"
    assert env["DAGSTER_HOME"] == str(tmp_path / "state" / "dagster")


def test_unset_home_defaults_to_the_checkout_folder_the_makefile_uses() -> None:
    assert DEFAULT_DAGSTER_HOME == REPO_ROOT / ".dagster_home"
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "DAGSTER_HOME ?= $(CURDIR)/.dagster_home" in makefile


def test_missing_repository_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.yaml"):
        prepare_dagster_home(
            {"DAGSTER_HOME": str(tmp_path / "home")}, source=tmp_path / "nowhere.yaml"
        )
    assert not (tmp_path / "home").exists()
