"""The house rules of the layout, checked on the real source tree.

* Arrows point down only: ``bot`` -> ``handlers`` -> ``content`` (content imports nothing from handlers/
  or bot/; handlers nothing from bot/), and no import cycles between sibling modules or packages at any
  depth. Both are import-linter contracts in ``pyproject.toml`` (``lint-imports`` prints them), run here
  through import-linter itself.
* No import cycle between any two modules, not only siblings (grimp's graph, the one import-linter
  builds; imports under ``if TYPE_CHECKING:`` do not run and are left out).
* No Python file over 600 lines, the tests included: every ``.py`` file of the repository but those in
  ``.venv*`` (and in the other hidden folders and those tools make: ``.git``, ``build``, ``__pycache__``...).

Each checker is also run once on a small package that breaks its rule, so that a checker that silently
checks nothing fails here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "content")
MAX_LINES = 600
# Files the line rule does not cover yet, each with the reason (shrink this list, never grow it):
# none since content/calendar.py gave its data sources to content/calendar_data.py and the tests/ suites
# over 600 lines were split by what they test (test_teams, test_slack, test_scheduler, test_ops, test_fuzz).
LINE_RULE_EXCEPTIONS: set[str] = set()
# Folders the line rule (and the layout rule below) leave alone: made by tools, not written here.
MADE_BY_TOOLS = {"__pycache__", "build", "dist", "node_modules"}


def module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (each one is at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(module: str) -> None:  # Tarjan's algorithm
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return out


def python_files(root: Path) -> list[Path]:
    """Every ``.py`` file under ``root`` but those in hidden folders (``.venv*``, ``.git``, ...) or in folders
    tools make (never walked into: a virtual environment holds tens of thousands of files)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in MADE_BY_TOOLS
                         and not d.endswith(".egg-info")]
        found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(found)


def long_files(root: Path) -> dict[str, int]:
    found = {}
    for path in python_files(root):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            found[path.relative_to(root).as_posix()] = lines
    return found


@pytest.fixture
def toy_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Writes a throw-away package ``toy`` on sys.path and returns a helper to add modules to it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "__init__.py").write_text("")

    def write(name: str, source: str) -> None:
        path = tmp_path / "toy" / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent != tmp_path / "toy" and not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").write_text("")
        path.write_text(textwrap.dedent(source))

    yield write
    for name in [m for m in sys.modules if m == "toy" or m.startswith("toy.")]:
        del sys.modules[name]


# ------------------------------------------------------------------------------ the real tree


def lint_imports(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's ``lint-imports`` on ``config``, in a child process that sees this one's ``sys.path``.

    Not in this process: import-linter's CLI configures logging with ``dictConfig``, which disables every
    logger that already exists (``chinadesk.*``), and later tests here would then see no log records.
    """
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-c", code, str(config)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_the_import_contracts_in_pyproject_hold():
    """content -> nothing above it, handlers -> no bot, no cycles among siblings (import-linter)."""
    run = lint_imports(ROOT / "pyproject.toml", ROOT)
    assert run.returncode == 0, f"an import breaks the layout rules (lint-imports says which):\n{run.stdout}"


def test_no_module_imports_itself_back_through_another():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert module_cycles(graph) == []


def test_content_and_handlers_import_nothing_above_them():
    """Said again directly on the graph, so that a broken contract file cannot hide it."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    upward = [
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if (importer.split(".")[0], imported.split(".")[0]) in {("content", "handlers"), ("content", "bot"),
                                                                ("handlers", "bot")}
    ]
    assert upward == []


def test_no_source_file_is_over_600_lines():
    """Every Python file of the repository, tests included (``.venv*`` and tool-made folders left out)."""
    assert {"bot", "handlers", "content", "bench", "tests"} <= {p.relative_to(ROOT).parts[0]
                                                              for p in python_files(ROOT)}
    too_long = {path: n for path, n in long_files(ROOT).items() if path not in LINE_RULE_EXCEPTIONS}
    assert too_long == {}, f"split these by responsibility: {too_long}"


def test_the_layout_has_only_the_design_cards_top_level_folders():
    """bot/ handlers/ content/ tests/ plus bench/ and docs/; the platform manifests live in their adapters."""
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
               and p.name not in MADE_BY_TOOLS and not p.name.endswith(".egg-info")}
    assert folders <= {"bot", "handlers", "content", "tests", "bench", "docs"}
    assert (ROOT / "bot" / "slack" / "manifest.yml").is_file()
    assert (ROOT / "bot" / "teams" / "manifest.json").is_file()


# --------------------------------------------------------------------- the checkers can fail


def test_the_cycle_check_finds_a_cycle_through_three_modules(toy_package):
    toy_package("a", "import toy.b\n")
    toy_package("b", "from toy import c\n")
    toy_package("c", "def later():\n    import toy.a  # a function-level import still closes the loop\n")
    toy_package("d", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import toy.a\n")
    graph = grimp.build_graph("toy", exclude_type_checking_imports=True)
    assert module_cycles(graph) == [["toy.a", "toy.b", "toy.c"]]


def test_the_layers_contract_finds_an_upward_import(toy_package, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    toy_package("low.data", "X = 1\n")
    toy_package("high.shell", "from toy.low import data\n")
    toy_package("low.sneaky", "import toy.high.shell  # the data layer reaching up\n")
    config = tmp_path / "contracts.toml"
    config.write_text(textwrap.dedent("""
        [tool.importlinter]
        root_package = "toy"
        [[tool.importlinter.contracts]]
        name = "high -> low"
        type = "layers"
        layers = ["toy.high", "toy.low"]
    """))
    run = lint_imports(config, tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr


def test_the_line_check_finds_a_long_file(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "pkg" / "short.py").write_text("x = 1\n" * MAX_LINES)
    # Tests and top-level scripts count too; a virtual environment's and a tool's files do not.
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "setup.py").write_text("x = 1\n" * (MAX_LINES + 1))
    for folder in (".venv", ".venv-ci", "build", "__pycache__"):
        (tmp_path / folder / "lib").mkdir(parents=True)
        (tmp_path / folder / "lib" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert long_files(tmp_path) == {"pkg/long.py": MAX_LINES + 1, "tests/test_long.py": MAX_LINES + 1,
                                    "setup.py": MAX_LINES + 1}
