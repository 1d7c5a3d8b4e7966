"""Readers of retrieval-benchmark annotation files, and resolving video names to files.

Every reader returns a :class:`RetrievalSet`: the videos (names as the annotations give them),
the captions in annotation order, and for each caption the index of its video.

Formats (``--dataset`` name -> what ``--annotations`` may be):

* ``msrvtt``: the 1k-A test split CSV (``MSRVTT_JSFUSION_test.csv``, header
  ``key;vid_key;video_id;sentence``; a comma-separated copy with the same header also works),
  the full ``MSRVTT_data.json`` (``{"videos": [...], "sentences": [...]}``; only the videos whose
  ``split`` is ``test`` are used when the file has splits: the 2,990-video "full" test split,
  20 captions each), or a ViCLIP/UMT caption list (``msrvtt_ret_test1k.json``).
* ``vatex``: the official ``vatex_*_v1.1.json`` list of ``{"videoID", "enCap": [10 captions]}``
  (English captions only), or a caption list.
* ``msvd``: a ViCLIP/UMT caption list (``msvd_ret_test.json``: one entry per video with a caption
  list), or the original ``AllVideoDescriptions.txt`` (lines ``<video id> <caption>``, ``#``
  comments skipped; it covers all 1,970 videos, so cut it to the split you want).
* ``didemo``: a ViCLIP/UMT caption list (``didemo_ret_test.json``), or the original DiDeMo
  ``test_data.json`` (one entry per moment: ``{"video", "description", "times", ...}``).
  Paragraph retrieval: a video's captions are joined, in order, into one caption.
* ``activitynet``: a ViCLIP/UMT caption list (``anet_ret_val_1.json``), or the original
  ActivityNet Captions ``val_1.json`` (``{"v_<id>": {"sentences": [...], ...}}``). Paragraph
  retrieval as for DiDeMo.
* ``json``: any caption list: a JSON list of objects with a video field (``video``,
  ``video_id``, ``videoID``, ``vid``) and a caption field (``caption``, ``captions``,
  ``sentence``, ``sentences``, ``text``, ``enCap``, ``description``) holding a string or a list
  of strings; several entries may name the same video. A JSON object mapping video -> caption(s)
  works too. An optional ``group`` field (a string) names what an entry shows: ``finetune``
  treats entries of one group as positives of each other (paraphrases of one event), not as
  negatives; ``bench`` ignores it.

Paragraphs are joined with single spaces, each sentence stripped first, as the ViCLIP/UMT
evaluation does.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import InputError

__all__ = [
    "DATASETS",
    "PARAGRAPH_DATASETS",
    "VIDEO_EXTENSIONS",
    "RetrievalSet",
    "read_annotations",
    "read_msrvtt_csv",
    "read_msrvtt_json",
    "read_caption_list",
    "read_vatex_json",
    "read_msvd_descriptions",
    "read_didemo_json",
    "read_activitynet_json",
    "to_paragraphs",
    "resolve_videos",
    "name_list",
    "read_text_file",
]

LOG = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("msrvtt", "vatex", "msvd", "didemo", "activitynet", "json")
PARAGRAPH_DATASETS: frozenset[str] = frozenset({"didemo", "activitynet"})

# tried in this order when an annotation names a video without (or with another) extension
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".webm",
    ".mkv",
    ".avi",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".3gp",
    ".ogv",
    ".ts",
)

_VIDEO_KEYS = ("video", "video_id", "videoID", "vid")
_CAPTION_KEYS = ("caption", "captions", "sentence", "sentences", "text", "enCap", "description")


@dataclass
class RetrievalSet:
    """Captions and videos of a retrieval benchmark.

    Attributes:
        videos: video names as the annotations give them (file names, maybe without extension).
        captions: captions in annotation order (paragraphs for paragraph retrieval).
        caption_video: int64 ``[len(captions)]``: index into ``videos`` of each caption's video.
        name: dataset name (one of :data:`DATASETS`).
        paragraph: the captions are per-video paragraphs.
    """

    videos: list[str]
    captions: list[str]
    caption_video: np.ndarray
    name: str = "json"
    paragraph: bool = False
    source: str = field(default="", compare=False)
    groups: list[str | None] | None = field(
        default=None, compare=False
    )  # per caption (json ``group``); None: none given

    def __post_init__(self) -> None:
        self.caption_video = np.asarray(self.caption_video, dtype=np.int64)
        if self.caption_video.shape != (len(self.captions),):
            raise ValueError(f"caption_video has shape {self.caption_video.shape}, expected ({len(self.captions)},)")
        if self.caption_video.size and (self.caption_video.min() < 0 or self.caption_video.max() >= len(self.videos)):
            raise ValueError("caption_video refers to videos that are not in the list")
        if self.groups is not None and len(self.groups) != len(self.captions):
            raise ValueError(f"groups has {len(self.groups)} entries, expected one per caption ({len(self.captions)})")

    def subset(self, keep: Sequence[int]) -> RetrievalSet:
        """The benchmark restricted to the videos at positions ``keep`` (in that order) and their captions.

        Captions keep their annotation order.
        """
        keep = [int(i) for i in keep]
        new_index = np.full(len(self.videos), -1, dtype=np.int64)
        new_index[keep] = np.arange(len(keep))
        mapped = new_index[self.caption_video]
        rows = np.flatnonzero(mapped >= 0)
        return RetrievalSet(
            videos=[self.videos[i] for i in keep],
            captions=[self.captions[i] for i in rows],
            caption_video=mapped[rows],
            name=self.name,
            paragraph=self.paragraph,
            source=self.source,
            groups=None if self.groups is None else [self.groups[i] for i in rows],
        )


# -- building blocks ----------------------------------------------------------------------


def _build(pairs: Iterable[tuple[str, str]], name: str, source: Path | str) -> RetrievalSet:
    """Group ``(video, caption)`` pairs: videos in order of first appearance, captions in order."""
    index: dict[str, int] = {}
    videos: list[str] = []
    captions: list[str] = []
    owner: list[int] = []
    for video, caption in pairs:
        if video not in index:
            index[video] = len(videos)
            videos.append(video)
        captions.append(caption)
        owner.append(index[video])
    if not captions:
        raise InputError(f"{source}: no captions found")
    return RetrievalSet(videos, captions, np.asarray(owner, np.int64), name=name, source=str(source))


def to_paragraphs(rs: RetrievalSet, sep: str = " ") -> RetrievalSet:
    """Join each video's captions (in annotation order, each stripped) into one paragraph."""
    parts: list[list[str]] = [[] for _ in rs.videos]
    for caption, v in zip(rs.captions, rs.caption_video.tolist(), strict=False):
        text = caption.strip()
        if text:
            parts[v].append(text)
    keep = [i for i, p in enumerate(parts) if p]
    return RetrievalSet(
        videos=[rs.videos[i] for i in keep],
        captions=[sep.join(parts[i]) for i in keep],
        caption_video=np.arange(len(keep), dtype=np.int64),
        name=rs.name,
        paragraph=True,
        source=rs.source,
    )


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError(f"annotation file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"annotation path {path} is a directory; pass the annotation file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; pass the JSON annotation file") from None


def read_text_file(path: Path | str) -> str:
    """A UTF-8 annotation file's text (BOM dropped); one-line :class:`InputError` if unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"annotation file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"annotation path {path} is a directory; pass the annotation file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None


def _captions_of(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return list(value)
    raise InputError(f"{where}: a caption must be a string or a list of strings, got {type(value).__name__}")


def _first_key(entry: dict, keys: Sequence[str]) -> str | None:
    for k in keys:
        if k in entry:
            return k
    return None


# -- readers ------------------------------------------------------------------------------


def read_msrvtt_csv(path: Path | str) -> RetrievalSet:
    """Read the MSR-VTT 1k-A CSV (header ``key;vid_key;video_id;sentence``, ';' or ',' separated)."""
    path = Path(path)
    text = read_text_file(path)
    lines = text.splitlines()
    if not lines:
        raise InputError(f"{path} is empty")
    header = lines[0]
    delim = ";" if header.count(";") >= header.count(",") else ","
    rows = list(csv.reader(lines, delimiter=delim))
    cols = [c.strip() for c in rows[0]]
    if "video_id" not in cols or "sentence" not in cols:
        raise InputError(
            f"{path}: expected a header with video_id and sentence (key;vid_key;video_id;sentence), got {header[:80]!r}"
        )
    iv, isent = cols.index("video_id"), cols.index("sentence")
    pairs = []
    first_line: dict[str, list[int]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(iv, isent):
            raise InputError(
                f"{path}, line {lineno}: expected {len(cols)} fields separated by {delim!r}, got {len(row)}"
            )
        # a sentence containing the separator was split: glue the tail back on
        sentence = delim.join(row[isent:]) if isent == len(cols) - 1 else row[isent]
        pairs.append((row[iv].strip(), sentence.strip()))
        first_line.setdefault(pairs[-1][0], []).append(lineno)
    _warn_duplicate_ids(path, first_line)
    return _build(pairs, "msrvtt", path)


def _warn_duplicate_ids(path: Path, lines_of: dict[str, list[int]]) -> None:
    """The 1k-A CSV has one line per video: a repeated ``video_id`` is most likely an edit gone wrong."""
    repeated = {vid: lines for vid, lines in lines_of.items() if len(lines) > 1}
    if repeated:
        vid, lines = next(iter(repeated.items()))
        more = f" (and {len(repeated) - 1} more video_ids)" if len(repeated) > 1 else ""
        LOG.warning(
            "%s: video_id %s is on lines %s%s; their captions are merged into one video",
            path,
            vid,
            ", ".join(map(str, lines[:5])),
            more,
        )


def read_msrvtt_json(path: Path | str, data: Any = None, split: str | None = "test") -> RetrievalSet:
    """Read ``MSRVTT_data.json``: ``{"videos": [{"video_id", "split"}], "sentences": [{"video_id", "caption"}]}``.

    Args:
        path: the file (also used in messages when ``data`` is given).
        data: the already parsed JSON, if any.
        split: keep the videos of this split when the videos carry a ``split`` field (None: all).
    """
    path = Path(path)
    data = _load_json(path) if data is None else data
    if not isinstance(data, dict) or "sentences" not in data:
        raise InputError(f"{path}: expected MSRVTT_data.json with 'videos' and 'sentences'")
    videos = data.get("videos") or []
    if not isinstance(data["sentences"], list) or not isinstance(videos, list):
        raise InputError(f"{path}: 'videos' and 'sentences' of MSRVTT_data.json must be lists")
    if split is not None and videos and all(isinstance(v, dict) and "split" in v for v in videos):
        wanted = [v["video_id"] for v in videos if v["split"] == split]
        if not wanted:
            splits = sorted({str(v["split"]) for v in videos})
            raise InputError(f"{path}: no videos in split {split!r}; splits present: {', '.join(splits)}")
    else:
        wanted = [v["video_id"] for v in videos if isinstance(v, dict) and "video_id" in v]
    order = {vid: i for i, vid in enumerate(wanted)}
    by_video: dict[str, list[str]] = {vid: [] for vid in wanted}
    for i, s in enumerate(data["sentences"]):
        if not isinstance(s, dict) or "video_id" not in s or "caption" not in s:
            raise InputError(f"{path}: sentence {i} lacks 'video_id' or 'caption'")
        vid = s["video_id"]
        if not order:  # no video list: take the sentences' videos
            by_video.setdefault(vid, [])
        if vid in by_video:
            by_video[vid].append(s["caption"].strip())
    pairs = [(vid, c) for vid, caps in by_video.items() for c in caps]
    return _build(pairs, "msrvtt", path)


def read_caption_list(path: Path | str, data: Any = None, name: str = "json") -> RetrievalSet:
    """Read a caption list (ViCLIP/UMT ``*_ret_test.json`` and friends, or a video -> caption(s) object)."""
    path = Path(path)
    data = _load_json(path) if data is None else data
    pairs: list[tuple[str, str]] = []
    groups: list[str | None] = []  # per caption, from an entry's optional "group" field
    if isinstance(data, dict):
        for vid, value in data.items():
            if isinstance(value, dict):
                key = _first_key(value, _CAPTION_KEYS)
                if key is None:
                    raise InputError(f"{path}: entry {vid!r} has no caption field (one of {', '.join(_CAPTION_KEYS)})")
                value = value[key]
            pairs.extend((str(vid), c) for c in _captions_of(value, f"{path}, entry {vid!r}"))
    elif isinstance(data, list):
        for i, entry in enumerate(data):
            if not isinstance(entry, dict):
                raise InputError(
                    f"{path}: entry {i} is a {type(entry).__name__}, expected an object with video and caption fields"
                )
            vkey = _first_key(entry, _VIDEO_KEYS)
            ckey = _first_key(entry, _CAPTION_KEYS)
            if vkey is None or ckey is None:
                missing = "video" if vkey is None else "caption"
                keys = _VIDEO_KEYS if vkey is None else _CAPTION_KEYS
                raise InputError(f"{path}: entry {i} has no {missing} field (one of {', '.join(keys)})")
            caps = _captions_of(entry[ckey], f"{path}, entry {i}")
            pairs.extend((str(entry[vkey]), c) for c in caps)
            group = entry.get("group")
            if group is not None and not isinstance(group, str):
                raise InputError(f"{path}: entry {i} has a {type(group).__name__} 'group'; it must be a string")
            groups.extend([group] * len(caps))
    else:
        raise InputError(f"{path}: expected a JSON list of {{video, caption}} objects")
    rs = _build(pairs, name, path)
    if any(g is not None for g in groups):
        rs.groups = groups  # _build keeps the pairs' order, so groups stay aligned with captions
    return rs


def read_vatex_json(path: Path | str, data: Any = None) -> RetrievalSet:
    """Read VATEX ``vatex_*_v1.1.json``: a list of ``{"videoID", "enCap": [...]}`` (English captions)."""
    path = Path(path)
    data = _load_json(path) if data is None else data
    if not isinstance(data, list):
        raise InputError(f"{path}: expected the VATEX list of {{videoID, enCap}} objects")
    pairs = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "videoID" not in entry or "enCap" not in entry:
            raise InputError(f"{path}: entry {i} lacks 'videoID' or 'enCap'")
        pairs.extend((str(entry["videoID"]), c) for c in _captions_of(entry["enCap"], f"{path}, entry {i}"))
    return _build(pairs, "vatex", path)


def read_msvd_descriptions(path: Path | str) -> RetrievalSet:
    """Read MSVD ``AllVideoDescriptions.txt``: ``<video id> <caption>`` lines, ``#`` comments skipped."""
    path = Path(path)
    pairs = []
    for lineno, line in enumerate(read_text_file(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        vid, _, caption = line.partition(" ")
        if not caption.strip():
            raise InputError(f"{path}, line {lineno}: expected '<video id> <caption>'")
        pairs.append((vid, caption.strip()))
    return _build(pairs, "msvd", path)


def read_didemo_json(path: Path | str, data: Any = None) -> RetrievalSet:
    """Read DiDeMo as paragraphs: the original ``{"video", "description"}`` list or a caption list."""
    path = Path(path)
    data = _load_json(path) if data is None else data
    if (
        isinstance(data, list)
        and data
        and isinstance(data[0], dict)
        and "description" in data[0]
        and "caption" not in data[0]
    ):
        pairs = []
        for i, entry in enumerate(data):
            if not isinstance(entry, dict) or "video" not in entry or "description" not in entry:
                raise InputError(f"{path}: entry {i} lacks 'video' or 'description'")
            pairs.extend((str(entry["video"]), c) for c in _captions_of(entry["description"], f"{path}, entry {i}"))
        rs = _build(pairs, "didemo", path)
    else:
        rs = read_caption_list(path, data, name="didemo")
    return to_paragraphs(rs)


def read_activitynet_json(path: Path | str, data: Any = None) -> RetrievalSet:
    """Read ActivityNet Captions as paragraphs: the original ``{"v_id": {"sentences"}}`` object or a caption list."""
    path = Path(path)
    data = _load_json(path) if data is None else data
    if isinstance(data, dict):
        pairs = []
        for vid, entry in data.items():
            if not isinstance(entry, dict) or "sentences" not in entry:
                raise InputError(f"{path}: entry {vid!r} lacks 'sentences' (expected ActivityNet Captions val_1.json)")
            pairs.extend((str(vid), c) for c in _captions_of(entry["sentences"], f"{path}, entry {vid!r}"))
        rs = _build(pairs, "activitynet", path)
    else:
        rs = read_caption_list(path, data, name="activitynet")
    return to_paragraphs(rs)


def read_annotations(dataset: str, path: Path | str) -> RetrievalSet:
    """Read ``path`` as the annotations of ``dataset`` (see the module docstring for formats).

    Raises:
        InputError: unknown dataset, unreadable file, or a file that is not in a known format.
    """
    path = Path(path)
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if not path.exists():
        raise InputError(f"annotation file {path} does not exist")
    suffix = path.suffix.lower()
    if dataset == "msrvtt" and suffix == ".csv":
        rs = read_msrvtt_csv(path)
    elif dataset == "msvd" and suffix == ".txt":
        rs = read_msvd_descriptions(path)
    else:
        data = _load_json(path)
        if dataset == "msrvtt" and isinstance(data, dict) and "sentences" in data:
            rs = read_msrvtt_json(path, data)
        elif (
            dataset == "vatex" and isinstance(data, list) and data and isinstance(data[0], dict) and "enCap" in data[0]
        ):
            rs = read_vatex_json(path, data)
        elif dataset == "didemo":
            rs = read_didemo_json(path, data)
        elif dataset == "activitynet":
            rs = read_activitynet_json(path, data)
        else:
            rs = read_caption_list(path, data, name=dataset)
    rs.name = dataset
    LOG.info("%s: %d videos, %d captions from %s", dataset, len(rs.videos), len(rs.captions), path)
    return rs


# -- video files --------------------------------------------------------------------------


def _strip_video_ext(name: str) -> str:
    base, ext = os.path.splitext(name)
    return base if ext.lower() in VIDEO_EXTENSIONS else name


def _ext_rank(p: Path) -> int:
    ext = p.suffix.lower()
    return VIDEO_EXTENSIONS.index(ext) if ext in VIDEO_EXTENSIONS else len(VIDEO_EXTENSIONS)


def resolve_videos(names: Sequence[str], directory: Path | str) -> list[Path | None]:
    """Find the file of each video name under ``directory``.

    A name is tried as given (relative to ``directory``), then with each of
    :data:`VIDEO_EXTENSIONS` in place of its own (``video7020`` -> ``video7020.mp4``), then by its
    bare stem anywhere below ``directory`` when exactly one file has it, and for ActivityNet ids
    with the ``v_`` prefix added or removed.

    Returns:
        One entry per name: the file, or None when there is none.

    Raises:
        InputError: ``directory`` is not a directory.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"video directory {root} does not exist or is not a directory")
    by_rel: dict[str, list[Path]] = {}
    by_stem: dict[str, list[Path]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath, f)
            if p.suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            rel = p.relative_to(root).with_suffix("").as_posix()
            by_rel.setdefault(rel, []).append(p)
            by_stem.setdefault(p.stem, []).append(p)

    def lookup(name: str) -> Path | None:
        direct = root / name
        if direct.is_file():
            return direct
        rel = _strip_video_ext(name).replace(os.sep, "/")
        cands = by_rel.get(rel)
        if cands:
            return min(cands, key=_ext_rank)
        cands = by_stem.get(Path(rel).name)
        if cands and len({c.with_suffix("") for c in cands}) == 1:
            return min(cands, key=_ext_rank)
        return None

    out: list[Path | None] = []
    for name in names:
        found = lookup(name)
        if found is None:
            stem = Path(_strip_video_ext(name)).name
            alt = stem[2:] if stem.startswith("v_") else f"v_{stem}"
            found = lookup(alt)
        out.append(found)
    return out


def name_list(names: Sequence[str], first: int = 5, count: bool = True) -> str:
    """``"3 (a, b, c)"`` or ``"120 (a, b, c, d, e, ...)"``: a count and the first few names.

    With ``count=False`` only the names: ``"a, b, c, d, e, ..."``.
    """
    shown = ", ".join(names[:first]) + (", ..." if len(names) > first else "")
    return f"{len(names)} ({shown})" if count else shown
