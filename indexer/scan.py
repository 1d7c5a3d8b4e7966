"""Scan a folder for videos and diff it against the library.

The diff decides, without decoding anything or loading a model, what an ``index`` run must do:
encode new and changed files, re-point renamed/moved files (recognized by a content fingerprint,
so they keep their embeddings), refresh the mtime of touched-but-identical files, and forget files
that disappeared from the scanned folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidsearch.indexer.sources import NOT_REGULAR, FileSource, file_source
from vidsearch.paths import canonical_path

if TYPE_CHECKING:  # only annotations: a scan alone (an empty folder) needs no database layer
    from vidsearch.store.videos import KnownVideo, Snapshot

__all__ = [
    "VIDEO_EXTENSIONS",
    "NOT_REGULAR",
    "FileSource",
    "ScanResult",
    "Plan",
    "find_videos",
    "file_source",
    "plan_changes",
]

LOG = logging.getLogger(__name__)

# Containers FFmpeg (and so decord/PyAV) reads. Files with other extensions are not videos to
# us (subtitles, thumbnails, .nfo files live beside videos), so they are skipped, not "failed".
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .avi .mov .qt .wmv .asf .flv .f4v .mpg .mpeg .mpe .m2v .ts .mts .m2ts "
    ".vob .ogv .ogg .3gp .3g2 .mxf .dv .divx .rm .rmvb .y4m .gif".split()
)


@dataclass
class ScanResult:
    """Files found, and paths that could not even be looked at (with a one-line reason)."""

    files: list[FileSource] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def find_videos(root: Path, extensions: frozenset[str] = VIDEO_EXTENSIONS) -> ScanResult:
    """Walk ``root`` recursively (following symlinks, never looping) for video files.

    Each real file is listed once, under its canonical path (symlinked folders resolved), so
    indexing a link to a folder and the folder itself store the same rows.
    """
    result = ScanResult()
    root = Path(canonical_path(root))
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()

    def on_error(err: OSError) -> None:
        result.problems.append((err.filename or str(root), f"cannot list directory: {err.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a symlink loop or a second link to a folder already walked
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() not in extensions:
                continue
            entry = file_source(os.path.join(real, name))
            if not isinstance(entry, FileSource):
                result.problems.append(entry)
                continue
            real_file = os.path.realpath(entry.path)
            if real_file in seen_files:
                continue
            seen_files.add(real_file)
            result.files.append(entry)
    return result


@dataclass
class Plan:
    """What an index run has to do; see the module docstring."""

    encode: list[FileSource] = field(default_factory=list)
    reencode: set[str] = field(default_factory=set)  # paths that already have a row: encoding them updates it
    moved: list[tuple[int, FileSource]] = field(default_factory=list)  # (video id, new location)
    touched: list[tuple[int, FileSource]] = field(default_factory=list)  # same content, new mtime
    removed: list[int] = field(default_factory=list)  # video ids gone from the scanned folder
    unchanged: int = 0
    failed_unchanged: int = 0  # failed before and not modified since: not retried
    fingerprints: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # unreadable while fingerprinting


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def plan_changes(
    snapshot: Snapshot,
    files: list[FileSource],
    root: Path | None,
    *,
    retry_failed: bool = False,
    retry_options: Callable[[dict[str, Any] | None], bool] | None = None,
    verify: bool = False,
) -> Plan:
    """Diff scanned ``files`` against the library's videos for one embedding space.

    Args:
        snapshot: the library's videos, and which have segments in the space being indexed
            (:func:`vidsearch.store.videos.snapshot`).
        files: what the scan found.
        root: the scanned folder; library videos under it that were not found are removed.
            None (indexing an explicit file list) removes nothing.
        retry_failed: re-try files that failed before even if they did not change.
        retry_options: re-try unchanged failed files whose stored failure options it accepts
            (the index run's: failed under other decode options; None when no option played a part).
        verify: re-fingerprint files whose size and mtime did not change too (a file replaced
            by another of the same size and mtime is otherwise taken as unchanged).
    """
    plan = Plan()
    rows = snapshot.videos
    in_space = snapshot.in_space
    by_path = {r.path: r for r in rows}
    found_paths = {f.path for f in files}
    root_s = canonical_path(root) if root is not None else None
    # Rows whose file is gone: candidates for a move, otherwise removed (when under the root).
    orphans = {r.id: r for r in rows if r.path not in found_paths and not os.path.exists(r.path)}
    orphan_by_fp: dict[str, list[KnownVideo]] = {}
    for r in orphans.values():
        orphan_by_fp.setdefault(r.fingerprint, []).append(r)

    def fp(entry: FileSource) -> str | None:
        try:
            value = entry.fingerprint()
        except OSError as exc:
            plan.problems.append((entry.path, f"cannot read: {exc.strerror or exc}"))
            return None
        plan.fingerprints[entry.path] = value
        return value

    for entry in files:
        row = by_path.get(entry.path)
        if row is not None:
            plan.reencode.add(entry.path)
            same_stat = row.size == entry.size and row.mtime_ns == entry.mtime_ns
            if not same_stat or verify:
                value = fp(entry)
                if value is None:
                    continue
                if value != row.fingerprint:
                    plan.encode.append(entry)
                    continue
                plan.touched.append((row.id, entry))
            if row.failed:
                if retry_failed or (retry_options is not None and retry_options(row.failed_options)):
                    plan.encode.append(entry)
                else:
                    plan.failed_unchanged += 1
            elif row.id in in_space:
                plan.unchanged += 1
            else:
                plan.encode.append(entry)  # indexed with another model only
            continue
        value = fp(entry)
        if value is None:
            continue
        candidates = orphan_by_fp.get(value)
        if candidates:
            moved = candidates.pop()
            orphans.pop(moved.id, None)
            plan.moved.append((moved.id, entry))
            plan.reencode.add(entry.path)
            if not moved.failed and moved.id in in_space:
                continue
            if moved.failed and not (
                retry_failed or (retry_options is not None and retry_options(moved.failed_options))
            ):
                plan.failed_unchanged += 1
                continue
        plan.encode.append(entry)
    if root_s is not None:
        plan.removed = [r.id for r in orphans.values() if _under(r.path, root_s)]
    return plan
