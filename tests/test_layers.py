"""The project's packages import downwards only.

Each package may import its own modules and those of the packages below it, never one above or
beside it: the pieces several apps use (archive writers, error types) sit in ``foundation`` at the
bottom, with metrics and logs (``observability``), the RQ plumbing (``jobqueue``) and HTTP serving
(``serving``) above it and below the apps; an app that needs something from a higher one is a sign
that the piece belongs lower. The project shell (``ocl_export``'s settings and urls) names the
apps above it by string only.
Read from the source with ``ast``, every import statement anywhere in a module (inside functions
too), so an import deferred to dodge a cycle counts as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. Packages on one level may not import each other.
LAYERS: list[set[str]] = [
    {"foundation"},
    {"observability"},
    {"jobqueue", "serving"},
    {"read_cache"},
    {"repos"},
    {"console"},
    {"ocl_export"},
    {"mirror", "operations"},
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def project_packages() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "bench", "deploy"}


def imported_packages(path: Path) -> set[str]:
    """The top-level names this module imports absolutely (relative imports stay in its package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_has_a_layer() -> None:
    assert project_packages() == set(LEVEL), "add a new package to LAYERS, at the level it belongs"


@pytest.mark.parametrize("package", sorted(LEVEL))
def test_a_package_imports_only_itself_and_the_layers_below(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imported_packages(path) & set(LEVEL)):
            if name != package and LEVEL[name] >= LEVEL[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_the_check_sees_an_import_that_runs_back_up(tmp_path: Path) -> None:
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from ocl_export.jobs import x\n    import mirror.sync\n")
    assert imported_packages(module) == {"ocl_export", "mirror"}


def test_the_project_settings_name_the_apps_by_string_only() -> None:
    """ocl_export/settings.py sits in the export app but gathers every app's settings: importing one
    of mirror's or operations' modules would run back up the layers."""
    settings_module = ROOT / "ocl_export" / "settings.py"
    assert imported_packages(settings_module) & set(LEVEL) <= {"foundation"}


def test_every_feature_settings_module_is_gathered() -> None:
    from django.conf import settings

    modules = {f"{path.parent.name}.conf" for path in ROOT.glob("*/conf.py")}
    assert modules == set(settings.FEATURE_SETTINGS), "name a new conf.py in FEATURE_SETTINGS"
