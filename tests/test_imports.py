from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gitexp

PACKAGE = Path(gitexp.__file__).parent
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_gitexp_loads_no_heavy_library() -> None:
    loaded = _modules_after("import gitexp")
    assert not {"torch", "dvc", "numpy", "pygit2", "rich"} & loaded


def test_help_loads_only_the_command_line() -> None:
    loaded = _modules_after("from gitexp.cli import cli\ncli(['--help'], standalone_mode=False)")
    assert not {"torch", "dvc", "numpy", "pygit2", "rich", "ruamel"} & loaded


def test_the_api_and_the_torch_helpers_load_neither_torch_nor_dvc() -> None:
    loaded = _modules_after(
        "import gitexp; gitexp.init\n"
        "from gitexp.torch import describe, rank, save_checkpoint, share_run_id"
    )
    assert not {"torch", "dvc", "dvc_data"} & loaded


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.AST, at_run_time: bool) -> Iterator[str]:
    """Every module name `node` imports, at any depth (inside functions too).

    `at_run_time` leaves out `if TYPE_CHECKING:` blocks, which never run. `from gitexp import
    x` names the module gitexp.x when there is one.
    """
    if at_run_time and isinstance(node, ast.If) and _is_type_checking(node):
        for branch in node.orelse:
            yield from _imported(branch, at_run_time)
        return
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative to the package gitexp
            base = ".".join(["gitexp", *base.split(".")]).rstrip(".")
        yield base
        yield from (f"{base}.{alias.name}" for alias in node.names)
    for child in ast.iter_child_nodes(node):
        yield from _imported(child, at_run_time)


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(), str(MODULES[name]))


def _import_graph() -> dict[str, set[str]]:
    """gitexp module → the gitexp modules it imports when it runs."""
    graph = {}
    for name in MODULES:
        edges = set()
        for imported in _imported(_tree(name), at_run_time=True):
            parts = imported.split(".")
            if parts[0] == "gitexp" and len(parts) > 1 and parts[1] in MODULES:
                edges.add(parts[1])
        graph[name] = edges - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle for each import that leads back to a module still being visited."""
    found = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        path.append(name)
        for imported in sorted(graph[name]):
            if imported in path:
                found.append([*path[path.index(imported) :], imported])
            elif imported not in done:
                visit(imported, path)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [])
    return found


def test_the_import_graph_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_the_import_graph_skips_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from gitexp import api\n"
        "else:\n    from gitexp import data\n"
        "def f():\n    from gitexp.store import tip\n"
    )
    imported = set(_imported(ast.parse(source), at_run_time=True))
    assert {"gitexp.data", "gitexp.store"} <= imported
    assert "gitexp.api" not in imported


def test_gitexp_modules_import_each_other_without_a_cycle() -> None:
    cycles = [" → ".join(cycle) for cycle in _cycles(_import_graph())]
    assert not cycles, "import cycles among gitexp modules:\n" + "\n".join(cycles)


def test_only_data_imports_dvc() -> None:
    importers = sorted(
        name
        for name in MODULES
        if any(
            imported.split(".")[0] in {"dvc", "dvc_data"}
            for imported in _imported(_tree(name), at_run_time=False)
        )
    )
    assert importers == ["data"]
