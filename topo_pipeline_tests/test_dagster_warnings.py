"""The beta features the project chose print no warning; any other still does.

pytest's own settings ignore ``BetaWarning`` (pyproject.toml), so the code location is
loaded in a fresh process, recording every warning, as the code server and each run do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg

from topo_pipeline.dagster_warnings import DELIBERATE, ignore_deliberate_warnings
from topo_pipeline.instance import REPO_ROOT
from topo_pipeline_tests.processes import shell_env

LOAD_AND_RECORD = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import topo_pipeline.definitions
print(json.dumps([[w.category.__name__, str(w.message)] for w in caught]))
"""


def test_loading_the_definitions_prints_no_beta_or_preview_warning(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - our interpreter, a fixed script
        [sys.executable, "-c", LOAD_AND_RECORD],
        env={**shell_env(), "DAGSTER_HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    caught = json.loads(done.stdout.strip().splitlines()[-1])
    assert [c for c in caught if c[0] in ("BetaWarning", "PreviewWarning")] == []
    assert "Warning" not in done.stderr


def test_a_beta_feature_not_chosen_still_warns() -> None:
    emitted = [
        (dg.BetaWarning, "Parameter `backfill_policy` of function `asset` is currently in beta"),
        (dg.BetaWarning, "Function `something_new` is currently in beta"),
        (dg.PreviewWarning, "Class `SomethingPreviewed` is currently in preview"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ignore_deliberate_warnings()
        for category, message in emitted:
            warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "Function `something_new` is currently in beta",
        "Class `SomethingPreviewed` is currently in preview",
    ]


def test_the_readme_lists_every_feature_whose_warning_is_filtered() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### Dagster features in beta", 1)[1].split("\n#", 1)[0]
    for feature in DELIBERATE:
        name = feature.name.split("`")[1]
        assert f"`{name}`" in section, name
