"""The shape of the code: packages that do not lean on each other, short modules, and
processes that load only what their role needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "l1"
MAX_LINES = 400


def _node(module: str) -> str:
    """A module's place in the house: its sub-package of ``l1`` (``l1.runs``), or the
    module itself when it lies at the top (``l1.wiring``)."""
    parts = module.split(".")
    if len(parts) > 2 and (PACKAGE / parts[1]).is_dir():
        return ".".join(parts[:2])
    if len(parts) == 2 and (PACKAGE / parts[1]).is_dir():
        return module
    return ".".join(parts[:2])


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        ): path
        for path in PACKAGE.rglob("*.py")
    }


def _imports(path: Path) -> set[str]:
    """Every ``l1`` module ``path`` imports, type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = _modules()
    return {name for name in found if name.startswith("l1.") and name in modules}


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in _modules().items():
        if module == "l1" or module.startswith("l1.cli"):
            continue  # the command line sits above everything and is imported by nothing
        for imported in _imports(path):
            source, target = _node(module), _node(imported)
            if source != target and target != "l1":
                edges[source].add(target)
    return edges


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def test_no_package_imports_a_package_that_imports_it_back() -> None:
    graph = _graph()
    cycles = sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if _reaches(graph, target, source)
    )
    assert not cycles, "packages leaning on each other:\n" + "\n".join(cycles)


def test_domain_packages_stay_below_the_processes_that_run_them() -> None:
    graph = _graph()
    for lower in ("l1.effects", "l1.cache", "l1.events", "l1.runs", "l1.workers"):
        assert not _reaches(graph, lower, "l1.api"), f"{lower} reaches up into l1.api"
        assert not _reaches(graph, lower, "l1.wiring"), f"{lower} reaches up into l1.wiring"
    for lower in ("l1.effects", "l1.cache", "l1.events"):
        assert not _reaches(graph, lower, "l1.runs"), f"{lower} reaches up into l1.runs"


def test_modules_stay_short() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        (
            "l1.cli",
            [
                "litestar",
                "av",
                "numpy",
                "PIL",
                "httpx",
                "rich",
                "jinja2",
                "prometheus_client",
                "l1.api",
                "l1.effects.render",
            ],
        ),
        # The dashboard's thumbnails decode media in a pool of their own, never here.
        ("l1.api.app", ["av", "numpy", "PIL", "l1.effects.media", "l1.effects.render"]),
    ],
)
def test_a_process_loads_only_what_its_role_needs(module: str, must_not_load: list[str]) -> None:
    probe = (
        f"import sys, {module}\nprint(' '.join(m for m in {must_not_load!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == [], f"importing {module} loads {loaded}"


def test_help_loads_neither_frameworks_nor_the_client() -> None:
    """`l1 --help` (and a command's) must answer at once: no web framework, media
    library, HTTP client or rich text in sight."""
    probe = """
import sys
from l1.cli import cli
for args in (["--help"], ["render", "--help"], ["up", "--help"], ["effects", "--help"]):
    try:
        cli(args, prog_name="l1")
    except SystemExit as exit:
        assert exit.code == 0, (args, exit.code)
heavy = ["litestar", "av", "numpy", "PIL", "httpx", "rich", "uvicorn", "importlib.metadata"]
print("LOADED", " ".join(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = out.rpartition("LOADED")[2].split()
    assert loaded == [], f"`l1 --help` loads {loaded}"
