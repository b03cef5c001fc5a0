"""The package and its tests use Dagster through its public API only.

Dagster's private modules (``dagster._…``) change in minor releases without notice, and a
reader can no longer tell Dagster's behaviour from ours. These tests read the source: an
import of a private module, a private attribute of an object that is not our own, or an
instance setting that names a class of ours fails them.
"""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    path
    for folder in ("topo_pipeline", "topo_pipeline_tests", "bench")
    for path in (ROOT / folder).rglob("*.py")
)

OWN_PRIVATE_ATTRIBUTES = {
    # The simulator's request handler calls into the simulated API object it serves.
    ("topo_pipeline/simulator/handler.py", "api"),
    ("topo_pipeline/simulator/handler.py", "self.server.api"),
    # The test of the stage's memory settings reads its connection.
    ("topo_pipeline_tests/test_warehouse_staging.py", "stage"),
}
"""(file, receiver) pairs whose ``_name`` attributes are the project's own objects."""

DOCUMENTED = {("os", "_exit")}
"""Names that start with ``_`` and are public all the same."""


def _private_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_private(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and _is_private(node.module):
            found.append(node.module)
    return found


def _is_private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split("."))


def _private_attributes(tree: ast.AST, relative: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        if not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        receiver = ast.unparse(node.value)
        if receiver in ("self", "cls") or (relative, receiver) in OWN_PRIVATE_ATTRIBUTES:
            continue
        if (receiver, node.attr) in DOCUMENTED:
            continue
        found.append(f"{relative}:{node.lineno}: {receiver}.{node.attr}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_module_is_imported(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    assert _private_imports(tree) == []
    # Nor named as a string (instance config, monkeypatch targets); this file names them
    # to test the scan.
    if path != Path(__file__).resolve():
        assert "dagster._" not in path.read_text()


def test_no_private_attribute_of_another_library_is_used() -> None:
    found = []
    for path in SOURCES:
        relative = str(path.relative_to(ROOT))
        found += _private_attributes(ast.parse(path.read_text()), relative)
    assert found == []


def test_the_scan_finds_what_it_looks_for() -> None:
    tree = ast.parse(
        "from dagster._core.events import X\n"
        "import dagster._utils\n"
        "step._metadata_accumulator = 1\n"
        "self._fine = 2\n"
    )
    assert _private_imports(tree) == ["dagster._core.events", "dagster._utils"]
    assert _private_attributes(tree, "x.py") == ["x.py:3: step._metadata_accumulator"]


def test_the_instance_settings_name_only_dagsters_classes() -> None:
    settings = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    modules = [
        section["module"]
        for section in settings.values()
        if isinstance(section, dict) and "module" in section
    ]
    assert all(module.split(".")[0] in ("dagster", "dagster_postgres") for module in modules)
    assert "event_log_storage" not in settings
    assert "run_launcher" not in settings
