"""Typed errors: the library's fields, its plain one-line message, and the CLI's wording of them."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest

from vidsearch.cli.errors import ADVICE, flag, message
from vidsearch.errors import CheckpointError, InputError, LibraryError, ModelError, Remedy, VidsearchError


def test_fields_and_the_plain_message() -> None:
    exc = InputError("must be in [0, 1] (got 2)", argument="link_iou")
    assert (exc.what, exc.argument, exc.hint, exc.remedy) == ("must be in [0, 1] (got 2)", "link_iou", None, None)
    assert str(exc) == "link_iou must be in [0, 1] (got 2)"
    lib = LibraryError("no library at /x", path="/x", hint="index a folder into it first", remedy="index_first")
    assert str(lib) == "no library at /x; index a folder into it first" and str(lib.path) == "/x"
    assert str(VidsearchError("plain")) == "plain"


def test_the_cli_names_flags_and_words_the_remedies() -> None:
    assert flag("link_iou") == "--link-iou" and flag("start/end") == "--start/--end"
    assert (
        message(InputError("must be in [0, 1] (got 2)", argument="link_iou")) == "--link-iou must be in [0, 1] (got 2)"
    )
    lib = LibraryError("no library at /x", path="/x", hint="index a folder into it first", remedy="index_first")
    assert message(lib) == "no library at /x; run `vidsearch index DIR --library /x` first"
    gpu = ModelError(
        "bf16 is not available: this GPU has no bf16",
        argument="precision",
        hint="use fp16 or fp32",
        remedy="use_choices",
        choices=("fp16", "fp32"),
    )
    assert str(gpu) == "precision bf16 is not available: this GPU has no bf16; use fp16 or fp32"
    assert message(gpu) == "--precision bf16 is not available: this GPU has no bf16; use --precision fp16 or fp32"


def test_every_remedy_has_cli_advice() -> None:
    assert set(ADVICE) == set(Remedy.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "exc",
    [
        CheckpointError(
            "checkpoint /w.pth does not exist", path="/w.pth", hint="check its path", remedy="check_checkpoint"
        ),
        InputError("only apply to queries by a video clip", argument="start/end", remedy="span_needs_video"),
        ModelError("x", choices=("cpu",), env="VAR", value="v"),
    ],
)
def test_errors_keep_their_fields_across_processes(exc: VidsearchError) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and vars(back) == vars(exc) and str(back) == str(exc)


def _error_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant given to a call of an ``...Error`` class."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        func = node.func if isinstance(node, ast.Call) else None
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if isinstance(node, ast.Call) and name.endswith("Error"):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                in_fstrings = {id(v) for j in ast.walk(arg) if isinstance(j, ast.JoinedStr) for v in j.values}
                for part in ast.walk(arg):
                    if id(part) in in_fstrings:
                        continue
                    if isinstance(part, ast.JoinedStr):  # an f-string: its text, {} for the values
                        text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in part.values)
                        found.append((part.lineno, str(text)))
                    elif isinstance(part, ast.Constant) and isinstance(part.value, str):
                        found.append((part.lineno, part.value))
    return found


def test_no_library_error_names_a_cli_flag() -> None:
    """L0-L2 errors word their advice without flags; the CLI's wording is cli/errors.py."""
    root = Path(__file__).resolve().parents[1]
    apps = {"bench", "train", "cluster", "serve", "testing"}
    lower = [p for p in (root / "vidsearch").rglob("*.py") if not apps & set(p.relative_to(root).parts)]
    lower += list((root / "indexer").rglob("*.py"))
    flag_text = re.compile(r"(^|[\s(`'])--[a-z]")
    hits = [
        f"{p.relative_to(root)}:{line}: {text}"
        for p in lower
        for line, text in _error_strings(p)
        # another tool's command line
        if flag_text.search(text) and "huggingface-cli" not in text and "hf download" not in text
    ]
    assert not hits, "L0-L2 errors that name CLI flags:\n" + "\n".join(hits)
