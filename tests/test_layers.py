"""The architecture, enforced: every import points down the layers (docs/architecture.md).

An AST walk over every product module, imports inside functions included (lazy imports hide
cycles just as well as they hide start-up cost), checks that:

- no module imports a higher layer, or another component of its own layer that is not in that
  component's allowed list (sideways imports are the exception, listed and acyclic);
- no module imports a private (``_name``) symbol or module of another module;
- SQLAlchemy is imported only by ``vidsearch.store`` and ``vidsearch.migrations``;
- the apps (L3) reach the store only through its public read API (``store.library``,
  ``store.location``), never its tables, sessions or catalog: everything else goes through L2;
- the module graph has no cycle (lazy imports included);
- no product module is much over the size that one job takes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Repository folder -> the package it is installed as (pyproject's package-dir).
PACKAGE_DIRS = {
    "vidsearch": "vidsearch",
    "indexer": "vidsearch.indexer",
    "cli": "vidsearch.cli",
    "migrations": "vidsearch.migrations",
}

# Component (the first name below `vidsearch`) -> layer. A component not listed fails the test,
# so a new package has to be placed on purpose.
LAYERS: dict[str, int] = {
    # L0 core: no SQL, no knowledge of the library on disk.
    "errors": 0,
    "settings": 0,
    "fileio": 0,
    "paths": 0,
    "data": 0,
    "metrics": 0,
    "spans": 0,
    "tubes": 0,
    "labels": 0,
    "media": 0,
    "models": 0,
    "precision": 0,
    "speech": 0,
    # L1: the library on disk.
    "store": 1,
    "migrations": 1,
    # L2 services: the use cases every front end calls, the retrievers they fuse, the engines.
    "usecases": 2,
    "retrieval": 2,
    "search": 2,
    "rerank": 2,
    "enrich": 2,
    "indexer": 2,
    # L3 apps: front ends over the services.
    "cli": 3,
    "bench": 3,
    "train": 3,
    "serve": 3,
    "cluster": 3,
    # Data generators of the tests and benchmarks: nothing in the product imports them.
    "testing": 3,
    # The package itself (`vidsearch/__init__.py`, `__main__`).
    "": 4,
}

# Sideways imports allowed inside a layer (component -> components it may use). Everything
# else in the same layer is off limits, so the layer stays a set of independent parts.
SIDEWAYS: dict[str, set[str]] = {
    "errors": set(),
    # The environment's settings: read by the core parts that have one.
    "settings": set(),
    "fileio": {"errors"},
    "paths": set(),
    "data": set(),
    "metrics": {"errors"},
    "spans": {"errors", "metrics"},
    "tubes": {"errors"},
    "labels": {"errors", "data", "metrics", "fileio"},
    "media": {"errors", "fileio", "settings"},
    "precision": {"errors", "settings"},
    # Speech recognizers read audio and subtitles; nothing of the video models.
    "speech": {"errors"},
    # Encoders take frames of any size and resize them with the media resize (the official one).
    "models": {"errors", "fileio", "precision", "media", "settings"},
    # The store applies the migrations on open; the migrations read the store's metadata.
    "store": {"migrations"},
    "migrations": {"store"},
    # The use cases are built from every other service; nothing below them calls them.
    "usecases": {"retrieval", "search", "enrich", "rerank"},
    # The vector retriever answers with the vector engine.
    "retrieval": {"search"},
    "search": set(),
    # Re-ranking re-orders the hits of a search.
    "rerank": {"search"},
    "enrich": {"search"},
    "indexer": set(),
    "cli": {"bench", "train", "serve", "cluster"},
    "bench": set(),
    # Training reads annotation files with the benchmark's dataset readers.
    "train": {"bench"},
    "serve": set(),
    "cluster": set(),
    "testing": set(),
    "": set(LAYERS),
}

SQL_PACKAGES = ("sqlalchemy", "alembic")
# The store's public read API: what an app (L3) may import from the store. Tables (schema),
# sessions, the catalog and the row modules are the store's own; apps ask L2 (vidsearch.usecases).
STORE_PUBLIC = ("vidsearch.store.library", "vidsearch.store.location")
# Library methods that hand out a SQLAlchemy session: store internals, not for apps.
SESSION_METHODS = ("session", "write_session")
# The one app module still on the store's write path: a staged Ray run commits its rows the way
# the indexer's committer does, from a snapshot of the space (indexer/ and the write path are
# being restructured; this entry goes when the indexer offers that commit).
STORE_WRITERS = {"vidsearch.cluster.staging"}
SQL_OWNERS = ("store", "migrations")
# A module of one job stays readable in one sitting; the issue that introduced this test set
# "about 500 lines" as the bar. Lines of code are counted (blank and comment-only lines are not),
# so the formatter's wrapping of long calls does not move a module across the bar.
MAX_LINES = 500


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGE_DIRS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _product_files() -> list[Path]:
    files: list[Path] = []
    for folder in PACKAGE_DIRS:
        files.extend(p for p in sorted((ROOT / folder).rglob("*.py")) if "versions" not in p.parts)
    return files


MODULES: dict[str, Path] = {_module_name(p): p for p in _product_files()}


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) for every import, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            names = [alias.name for alias in node.names]
            # `from vidsearch.store import schema` imports a module, not a name.
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            for sub in submodules:
                found.append((node.lineno, f"{target}.{sub}", []))
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                found.append((node.lineno, target, rest))
    return found


def _internal(target: str) -> str | None:
    """The product module `target` names (or lies in), None for third-party imports."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for _, target, _ in _imports(module, path):
            internal = _internal(target)
            if internal and internal != module and not module.startswith(internal + "."):
                graph[module].add(internal)
    return graph


def test_every_component_has_a_layer() -> None:
    unknown = sorted({_component(m) for m in MODULES} - set(LAYERS))
    assert not unknown, f"place these components in LAYERS (docs/architecture.md): {unknown}"


def test_every_internal_import_exists() -> None:
    """A lazy import of a module that moved fails only when its code path runs: catch it here."""
    problems: list[str] = []
    for module, path in MODULES.items():
        for line, target, _ in _imports(module, path):
            if target.split(".")[0] == "vidsearch" and target not in MODULES:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {target}, which does not exist")
    assert not problems, "imports of missing modules:\n" + "\n".join(problems)


def test_imports_point_down() -> None:
    problems: list[str] = []
    for module, path in MODULES.items():
        src = _component(module)
        for line, target, _ in _imports(module, path):
            internal = _internal(target)
            if internal is None:
                continue
            dst = _component(internal)
            if dst == src or dst not in LAYERS or src not in LAYERS:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {internal}"
            if LAYERS[dst] > LAYERS[src]:
                problems.append(f"{where} (L{LAYERS[src]} -> L{LAYERS[dst]}: points up)")
            elif LAYERS[dst] == LAYERS[src] and dst not in SIDEWAYS.get(src, set()):
                problems.append(f"{where} (sideways inside L{LAYERS[src]}: {src} -> {dst})")
    assert not problems, "imports that do not point down:\n" + "\n".join(problems)


def test_no_private_names_across_modules() -> None:
    problems: list[str] = []
    for module, path in MODULES.items():
        for line, target, names in _imports(module, path):
            internal = _internal(target)
            if internal is None or internal == module:
                continue
            private_module = any(p.startswith("_") and p != "__main__" for p in target.split("."))
            private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private_module or private_names:
                problems.append(f"{path.relative_to(ROOT)}:{line} takes {private_names or target} from {target}")
    assert not problems, "private names used from another module:\n" + "\n".join(problems)


def test_sql_lives_in_the_store() -> None:
    problems: list[str] = []
    for module, path in MODULES.items():
        if _component(module) in SQL_OWNERS:
            continue
        for line, target, _ in _imports(module, path):
            if target.split(".")[0] in SQL_PACKAGES:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not problems, "SQL outside vidsearch.store / migrations:\n" + "\n".join(problems)


def _is_app(module: str) -> bool:
    return LAYERS.get(_component(module)) == 3


def test_apps_reach_the_store_only_through_its_public_read_api() -> None:
    problems: list[str] = []
    for module, path in MODULES.items():
        if not _is_app(module) or module in STORE_WRITERS:
            continue
        for line, target, _ in _imports(module, path):
            internal = _internal(target)
            if internal and _component(internal) == "store" and internal not in STORE_PUBLIC:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {internal}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in SESSION_METHODS:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno} opens a store session (.{node.attr})")
    assert not problems, (
        "apps (L3) reaching into the store; go through vidsearch.usecases or " + ", ".join(STORE_PUBLIC) + ":\n"
    ) + "\n".join(problems)


def test_store_rule_sees_internal_imports_and_sessions(tmp_path: Path) -> None:
    """The rule's own check: a catalog import and a session call are both found."""
    src = tmp_path / "mod.py"
    src.write_text("def f(lib):\n    from vidsearch.store import catalog\n    with lib.session():\n        pass\n")
    found = [_internal(t) for _, t, _ in _imports("vidsearch.serve.mod", src)]
    assert "vidsearch.store.catalog" in found and "vidsearch.store.catalog" not in STORE_PUBLIC
    calls = [n.attr for n in ast.walk(ast.parse(src.read_text())) if isinstance(n, ast.Attribute)]
    assert "session" in calls


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles (lazy imports included):\n" + "\n".join(cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    lines = sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    assert lines <= MAX_LINES, f"{module} has {lines} lines of code: split it by job (limit {MAX_LINES})"


def test_walker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The walk itself: imports inside functions and relative imports are found."""
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from .sibling import thing\n    import sqlalchemy\n", encoding="utf-8")
    found = _imports("vidsearch.pkg.mod", src)
    assert (2, "vidsearch.pkg.sibling", ["thing"]) in found
    assert (3, "sqlalchemy", []) in found
