"""The assignee directory: the CSV's validation, the rule that keeps a loaded directory when
its source is unset, missing or empty, ``reference/assignees`` and its checks, and the names
and teams it gives the rollups, end to end against the simulated API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.api.models import parse_timestamp
from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.assets.analytics import ANALYTICS_KEYS, OP_NAME, TASK_SLA_KEY
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY, MISSING_CHECK, SOURCE_CHECK
from topo_pipeline.defs.jobs import partition_range_tags
from topo_pipeline.settings import Settings
from topo_pipeline.simulator import DatasetSpec, assignee_ids, generate_dataset
from topo_pipeline.warehouse.analytics import ANALYTICS_TABLES, DEFAULT_SLA_TARGET_MINUTES
from topo_pipeline.warehouse.assignees import (
    AssigneeFileError,
    assignees_missing_from_directory,
    loaded_assignees,
    read_assignee_source,
    read_assignees,
    replace_assignees,
)
from topo_pipeline.warehouse.duckdb import connect
from topo_pipeline.warehouse.reference import LoadAction, SourceState, plan_reference_load
from topo_pipeline_tests.analytics_oracle import (
    assert_rows_match,
    expected_tables,
    read_table,
    table_columns,
    task_from_api,
)
from topo_pipeline_tests.harness import SimulatedPipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "assignees.csv"
ID_1 = "858934d6-aa4a-4876-85c9-880b56e0e421"
ID_2 = "13f666ab-6e14-4f60-b46a-0b9615fbd8b8"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assignees.csv"
    path.write_text(text)
    return path


# -- the file ---------------------------------------------------------------------------------


def test_a_good_file_is_read_with_lines_and_extra_columns_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"email,team,user_id,name\n"
        f"a@example.com,Enterprise,{ID_1.upper()},Maya Chen\n"
        f'b@example.com,,{ID_2},"Ortega, Luis\nJr."\n',
    )
    first, second = read_assignees(path)
    assert (first.user_id, first.name, first.team, first.line) == (
        ID_1,  # stored lower-case, as Topo sends ids
        "Maya Chen",
        "Enterprise",
        2,
    )
    # A quoted name spanning two lines: the row ends on line 4; an empty team is NULL.
    assert (second.name, second.team, second.line) == ("Ortega, Luis\nJr.", None, 4)


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "user_id,name,team\n"
        f"{ID_1},Maya Chen,Enterprise\n"
        ",No Id,SMB\n"
        "user-7,Not A Uuid,SMB\n"
        f"{ID_2},Luis Ortega,SMB\n"
        f"{ID_1.upper()},Maya Again,SMB\n",
    )
    with pytest.raises(AssigneeFileError) as caught:
        read_assignees(path)
    assert caught.value.problems == [
        "line 3: empty user_id",
        "line 4: user_id 'user-7' is not a UUID",
        f"line 6: user_id {ID_1} repeats line 2",
    ]
    assert "TOPO_ASSIGNEES_PATH" in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_header_without_the_required_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AssigneeFileError, match=r"line 1: the header lacks column\(s\) team"):
        read_assignees(write(tmp_path, f"user_id,name\n{ID_1},Maya\n"))


def test_a_file_without_rows_reads_as_none(tmp_path: Path) -> None:
    assert read_assignees(write(tmp_path, "")) == []
    assert read_assignees(write(tmp_path, "user_id,name,team\n")) == []


@pytest.mark.parametrize(
    ("text", "state"),
    [
        (None, SourceState.UNSET),  # no path configured
        ("", SourceState.EMPTY),  # zero bytes
        ("user_id,name,team\n", SourceState.EMPTY),  # a header alone
        (f"user_id,name,team\n{ID_1},Maya,SMB\n", SourceState.ROWS),
        ("user_id,name,team\nnot-an-id,Maya,SMB\n", SourceState.INVALID),
        ("user_id,name\n", SourceState.INVALID),  # a header without the team column
    ],
)
def test_the_source_says_what_it_holds(
    tmp_path: Path, text: str | None, state: SourceState
) -> None:
    source = read_assignee_source(None if text is None else write(tmp_path, text))
    assert source.state is state
    assert len(source.assignees) == (1 if state is SourceState.ROWS else 0)
    assert (source.problem is not None) == (state is SourceState.INVALID)


def test_a_missing_or_unreadable_source_says_so(tmp_path: Path) -> None:
    assert read_assignee_source(tmp_path / "gone.csv").state is SourceState.MISSING
    assert read_assignee_source(tmp_path).state is SourceState.MISSING  # a folder
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"user_id,name,team\n{ID_1},Jos\xe9,SMB\n".encode("latin-1"))
    source = read_assignee_source(latin1)
    assert source.state is SourceState.INVALID
    assert "UTF-8" in (source.problem or "")


# -- the rule: a missing source never empties a loaded table ---------------------------------

K, R, C, F = LoadAction.KEEP, LoadAction.REPLACE, LoadAction.CLEAR, LoadAction.FAIL


@pytest.mark.parametrize(
    ("source", "loaded", "clear", "action", "warn", "kept"),
    [
        # Loaded rows survive a source that is unset, missing or empty, with a warning.
        (SourceState.UNSET, 120, False, K, True, 120),
        (SourceState.MISSING, 120, False, K, True, 120),
        (SourceState.EMPTY, 120, False, K, True, 120),
        # Nothing loaded: the table stays empty; only a deliberate "no directory" is quiet.
        (SourceState.UNSET, 0, False, K, False, 0),
        (SourceState.MISSING, 0, False, K, True, 0),
        (SourceState.EMPTY, 0, False, K, True, 0),
        # A bad source fails the load and keeps the table.
        (SourceState.INVALID, 120, False, F, True, 120),
        (SourceState.INVALID, 0, False, F, True, 0),
        # Rows replace whatever is loaded.
        (SourceState.ROWS, 120, False, R, False, 0),
        (SourceState.ROWS, 0, False, R, False, 0),
        # Only an explicit clear empties the table, whatever the source holds.
        (SourceState.UNSET, 120, True, C, False, 0),
        (SourceState.EMPTY, 120, True, C, False, 0),
        (SourceState.INVALID, 120, True, C, False, 0),
        (SourceState.ROWS, 120, True, C, False, 0),
    ],
)
def test_the_load_plan(
    source: SourceState, loaded: int, clear: bool, action: LoadAction, warn: bool, kept: int
) -> None:
    plan = plan_reference_load(
        source, loaded, clear=clear, table="reference.assignees", setting="TOPO_ASSIGNEES_PATH"
    )
    assert (plan.action, plan.warn, plan.rows_kept) == (action, warn, kept)
    assert "reference.assignees" in plan.message
    if action is K and loaded:
        assert "keeps the 120 rows" in plan.message
        assert "clear: true" in plan.message  # how to empty it on purpose


def test_the_example_names_the_demo_assignees_but_one() -> None:
    people = read_assignees(EXAMPLE)
    demo = assignee_ids(DatasetSpec())
    data = generate_dataset(DatasetSpec(days=2, tasks_per_day=[300, 300], tie_group_size=0))
    assert {t["assignee_user_id"] for t in data.tasks} - {None} == set(demo)
    # Every demo assignee but the one with the lightest workload, so the check has a finding.
    assert [p.user_id for p in people] == demo[:-1]
    assert len({p.team for p in people}) == 3
    assert all(p.name for p in people)


def test_the_setting_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(TopoConfigError, match="TOPO_ASSIGNEES_PATH"):
        Settings.from_env({"TOPO_ASSIGNEES_PATH": str(tmp_path / "nowhere.csv")})
    assert Settings.from_env({}).assignees_path is None
    assert Settings.from_env({"TOPO_ASSIGNEES_PATH": str(EXAMPLE)}).assignees_path == EXAMPLE


def test_replacing_the_directory_swaps_every_row(tmp_path: Path) -> None:
    with connect(tmp_path / "pipeline.duckdb") as con:
        assert assignees_missing_from_directory(con) == []  # no tasks yet
        people = read_assignees(EXAMPLE)
        replace_assignees(con, people, loaded_at=datetime(2024, 1, 1, tzinfo=UTC))
        assert len(read_table_of(con)) == len(people)
        replace_assignees(con, [], loaded_at=datetime(2024, 1, 2, tzinfo=UTC))
        assert read_table_of(con) == []
        assert loaded_assignees(con) == 0


def read_table_of(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT * FROM warehouse.reference.assignees").fetchall()


# -- the asset, its check and the rollups ---------------------------------------------------

START = date(2026, 3, 2)
SPEC = DatasetSpec(
    start_date=START,
    days=2,
    tasks_per_day=[120, 90],
    timezone="America/New_York",
    as_of=datetime(2026, 3, 3, 23, 0, tzinfo=UTC),
    tie_group_size=0,
)
AS_OF = "2026-03-04T00:00:00Z"


class Pipeline(SimulatedPipeline):
    """Runs of the days ``first..last`` judged at ``as_of`` (class attributes: subclass them)."""

    first = START
    last = START + timedelta(days=1)
    as_of = AS_OF

    def run(
        self, selection: list[dg.AssetKey], *, partitioned: bool, clear: bool | None = None
    ) -> dg.ExecuteInProcessResult:
        defs = build_defs(self.settings)
        tags = partition_range_tags(self.first.isoformat(), self.last.isoformat())
        directory = defs.get_assets_def(ASSIGNEES_KEY)
        ops: dict[str, dict] = {}
        if TASK_SLA_KEY in selection:
            ops[OP_NAME] = {"config": {"as_of": self.as_of}}
        if clear is not None:
            ops[directory.op.name] = {"config": {"clear": clear}}
        return dg.materialize(
            [defs.get_assets_def(TASKS_KEY), directory, defs.get_assets_def(TASK_SLA_KEY)],
            selection=selection,
            resources=defs.resources,
            instance=self.instance,
            tags=tags if partitioned else None,
            run_config={"ops": ops} if ops else None,
            raise_on_error=False,
        )

    def everything(self) -> dg.ExecuteInProcessResult:
        return self.run([TASKS_KEY, *ANALYTICS_KEYS.values()], partitioned=True)

    def directory(self, *, clear: bool | None = None) -> dg.ExecuteInProcessResult:
        return self.run([ASSIGNEES_KEY], partitioned=False, clear=clear)

    def directory_rows(self) -> int:
        with connect(self.settings.duckdb_path, read_only=True) as con:
            return len(read_table_of(con))

    def warnings(self, result: dg.ExecuteInProcessResult) -> list[str]:
        """The WARNING lines of the run's log."""
        records = self.instance.all_logs(result.run_id)
        return [r.user_message for r in records if r.level == logging.WARNING]


@pytest.fixture
def pipeline(pipeline_factory) -> Pipeline:  # type: ignore[no-untyped-def]
    made = pipeline_factory(SPEC, Pipeline)
    made.settings = made.settings.model_copy(update={"assignees_path": EXAMPLE})
    return made


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return checks(result)[MISSING_CHECK]


def directory_materializations(result: dg.ExecuteInProcessResult) -> list[dg.AssetMaterialization]:
    return [
        event.step_materialization_data.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == ASSIGNEES_KEY
    ]


def test_names_and_teams_reach_the_rollups_and_the_check_lists_the_missing(
    pipeline: Pipeline,
) -> None:
    # Without the directory loaded yet: everything works, names NULL.
    assert pipeline.everything().success
    with connect(pipeline.settings.duckdb_path, read_only=True) as con:
        rows = read_table(con, "sla_by_assignee")
    assert rows
    assert {(r["assignee_name"], r["team"]) for r in rows} == {(None, None)}

    loaded = pipeline.directory()
    assert loaded.success
    evaluation = check_result(loaded)
    lightest = assignee_ids(SPEC)[-1]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN  # reported, blocks nothing
    assert evaluation.metadata["missing_assignees"].value == 1
    assert lightest in str(evaluation.metadata["missing"].value)

    assert pipeline.run(list(ANALYTICS_KEYS.values()), partitioned=True).success
    tasks = [task_from_api(t, SPEC.timezone) for t in pipeline.store.all()]
    directory = {p.user_id: (p.name, p.team) for p in read_assignees(EXAMPLE)}
    expected = expected_tables(tasks, parse_timestamp(AS_OF), DEFAULT_SLA_TARGET_MINUTES, directory)
    with connect(pipeline.settings.duckdb_path, read_only=True) as con:
        for table in ANALYTICS_TABLES:
            assert_rows_match(
                read_table(con, table), expected[table], table, table_columns(con, table)
            )
        teams = {r["team"] for r in read_table(con, "completion_rate_by_team")}
    assert teams == {"Enterprise", "Mid-Market", "SMB", None}


def test_a_bad_file_fails_naming_its_lines_and_keeps_the_directory(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    assert pipeline.directory().success
    loaded = len(read_assignees(EXAMPLE))
    bad = write(tmp_path, f"user_id,name,team\n{ID_1},A,B\nnot-an-id,C,D\n")
    pipeline.settings = pipeline.settings.model_copy(update={"assignees_path": bad})
    result = pipeline.directory()
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert "line 3: user_id 'not-an-id' is not a UUID" in message
    assert f"reference.assignees keeps its {loaded} rows" in message
    source = checks(result)[SOURCE_CHECK]
    assert not source.passed
    assert source.metadata["rows_kept"].value == loaded
    assert directory_materializations(result) == []
    assert pipeline.directory_rows() == loaded


def test_without_a_directory_the_check_passes_and_the_table_is_empty(pipeline: Pipeline) -> None:
    pipeline.settings = pipeline.settings.model_copy(update={"assignees_path": None})
    result = pipeline.directory()
    assert result.success
    assert check_result(result).passed
    assert checks(result)[SOURCE_CHECK].passed  # no directory was ever configured: no warning
    assert pipeline.warnings(result) == []
    assert pipeline.directory_rows() == 0


def _unset(tmp_path: Path) -> Path | None:
    return None


def _missing(tmp_path: Path) -> Path | None:
    # Set when the code location loaded (the setting checks the file then), gone since.
    path = write(tmp_path, f"user_id,name,team\n{ID_1},A,B\n")
    path.unlink()
    return path


def _empty(tmp_path: Path) -> Path | None:
    return write(tmp_path, "")


def _header_only(tmp_path: Path) -> Path | None:
    return write(tmp_path, "user_id,name,team\n")


@pytest.mark.parametrize(
    ("source", "state"),
    [
        (_unset, "unset"),
        (_missing, "missing"),
        (_empty, "empty"),
        (_header_only, "empty"),
    ],
)
def test_a_source_unset_missing_or_empty_keeps_the_loaded_directory(
    pipeline: Pipeline, tmp_path: Path, source: Callable[[Path], Path | None], state: str
) -> None:
    first = pipeline.directory()
    assert first.success
    assert len(directory_materializations(first)) == 1
    loaded = len(read_assignees(EXAMPLE))
    with connect(pipeline.settings.duckdb_path, read_only=True) as con:
        before = read_table_of(con)
    assert len(before) == loaded

    pipeline.settings = pipeline.settings.model_copy(update={"assignees_path": source(tmp_path)})
    result = pipeline.directory()

    assert result.success
    with connect(pipeline.settings.duckdb_path, read_only=True) as con:
        assert read_table_of(con) == before  # every row as it was, loaded_at included
    (warning,) = pipeline.warnings(result)
    assert f"reference.assignees keeps the {loaded} rows loaded earlier" in warning
    assert "clear: true" in warning
    evaluation = checks(result)[SOURCE_CHECK]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["rows_kept"].value == loaded
    assert evaluation.metadata["source_state"].value == state
    assert evaluation.metadata["action"].value == "keep"
    # Still judged against the kept directory, not an empty one.
    assert "not in reference.assignees" in (checks(result)[MISSING_CHECK].description or "")
    # Nothing changed, so no new materialization for the downstream automation to follow.
    assert directory_materializations(result) == []


def test_clear_empties_the_directory_when_asked(pipeline: Pipeline) -> None:
    assert pipeline.directory().success
    assert pipeline.directory_rows() == len(read_assignees(EXAMPLE))
    pipeline.settings = pipeline.settings.model_copy(update={"assignees_path": None})
    assert pipeline.directory(clear=False).success
    assert pipeline.directory_rows() == len(read_assignees(EXAMPLE))

    result = pipeline.directory(clear=True)

    assert result.success
    assert pipeline.directory_rows() == 0
    (materialization,) = directory_materializations(result)
    assert materialization.metadata["action"].value == "clear"
    assert materialization.metadata["dagster/row_count"].value == 0
    assert checks(result)[SOURCE_CHECK].passed
    assert pipeline.warnings(result) == []
