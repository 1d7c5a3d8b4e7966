"""One way to import (docs/architecture.md, "Imports"): heavy libraries lazily, the rest at the top.

An import inside a function is for a heavy library only (``HEAVY``, or a vidsearch module that
imports one at its top), so that commands that do not need it never pay for it; everything
else sits at the top of the module, where a reader looks for it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"vidsearch": "vidsearch", "indexer": "vidsearch.indexer", "cli": "vidsearch.cli"}

# Libraries whose import costs a command noticeable time (or that are optional extras): these,
# and only these, are imported inside the function that needs them.
HEAVY = frozenset(
    {
        # models and vectors
        "torch",
        "torchvision",
        "open_clip",
        "faiss",
        "onnxruntime",
        "onnx",
        "onnxscript",
        "tensorrt",
        "safetensors",
        "huggingface_hub",
        "cv2",
        # decoding
        "av",
        "decord",
        "numpy",
        "PIL",
        "imageio_ffmpeg",
        # cluster, server, data files
        "ray",
        "pyarrow",
        "fastapi",
        "starlette",
        "uvicorn",
        "multipart",
        "pydantic",
        # the library on disk
        "sqlalchemy",
        "alembic",
        # terminal output and command parsing (the CLI's start-up)
        "rich",
        "typer",
        "click",
        # text
        "regex",
        "ftfy",
        "platformdirs",
        "fasteners",
        # speech: optional extras, and subtitle parsers (tens of ms) only a video with subtitles needs
        "faster_whisper",
        "ctranslate2",
        "pocketsphinx",
        "pysubs2",
        "webvtt",
        # absent on Python 3.10: a stream config file needs 3.11
        "tomllib",
    }
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = PACKAGE_DIRS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {
    _module_name(p): p for folder in PACKAGE_DIRS for p in sorted((ROOT / folder).rglob("*.py"))
}


def _target(module: str, path: Path, node: ast.ImportFrom, name: str) -> str:
    if node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)] + ([node.module] if node.module else [])
        src = ".".join(base)
    else:
        src = node.module or ""
    return f"{src}.{name}" if f"{src}.{name}" in MODULES else src


@cache
def _imports(module: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(top-level imports, imports inside functions) of a module, without TYPE_CHECKING blocks."""
    path = MODULES[module]
    top: list[tuple[int, str]] = []
    lazy: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                (lazy if inside else top).extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                found = [(child.lineno, _target(module, path, child, a.name)) for a in child.names]
                (lazy if inside else top).extend(found)
            else:
                visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return top, lazy


@cache
def _heavy(name: str, seen: frozenset[str] = frozenset()) -> bool:
    """A heavy library, or a vidsearch module (or package above it) that imports one at its top."""
    if name not in MODULES:
        return name.split(".")[0] in HEAVY
    if name in seen:
        return False
    seen = seen | {name}
    parent = name.rpartition(".")[0]
    if parent in MODULES and _heavy(parent, seen):
        return True
    return any(_heavy(target, seen) for _, target in _imports(name)[0])


def test_lazy_imports_are_heavy_ones() -> None:
    needless = [
        f"{MODULES[m].relative_to(ROOT)}:{line}: {target}"
        for m in sorted(MODULES)
        for line, target in _imports(m)[1]
        if not _heavy(target)
    ]
    assert not needless, "light imports inside functions (move them to the top):\n" + "\n".join(needless)


def test_the_walk_tells_heavy_from_light() -> None:
    assert _heavy("torch") and _heavy("faiss.contrib") and not _heavy("json") and not _heavy("vidsearch.errors")
    assert _heavy("vidsearch.models.viclip")  # imports torch at its top
