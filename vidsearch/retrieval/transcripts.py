"""The transcript retriever: what is said, found by SQLite FTS5 (BM25) over the transcript lines.

A query's text becomes an FTS5 query: every word must occur in the line (FTS5's implicit AND,
each word quoted so no user text is read as FTS5 syntax), or, for ``--said "PHRASE"``, the exact
phrase (an FTS5 phrase: the words in this order, adjacent). Tokenizing, diacritic folding,
ranking and marking the matched words are FTS5's (``unicode61 remove_diacritics 2``, ``bm25``,
``highlight``); this module turns its marks into a quote and a time span: the matched words'
own times where the recognizer gave them, else a position interpolated along the subtitle line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vidsearch.retrieval.base import RetrievalQuery
from vidsearch.search import Said, VideoHit
from vidsearch.speech.transcript import words_from_json
from vidsearch.store.library import Library
from vidsearch.store.segments import SegmentInfo
from vidsearch.store.transcripts import MARK_CLOSE, MARK_OPEN, TextHit, search_lines

__all__ = ["TranscriptRetriever", "words_query", "phrase_query", "said_span"]

_HAS_WORD = re.compile(r"\w")
# Lines fetched per result wanted: filters and grouping (one line per video) drop some.
FETCH_PER_RESULT = 10
MIN_FETCH = 200


def words_query(text: str) -> str | None:
    """An FTS5 query matching lines that hold every word of ``text`` (None: no word in it)."""
    words = [w for w in text.split() if _HAS_WORD.search(w)]
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def phrase_query(phrase: str) -> str | None:
    """An FTS5 phrase query: the words of ``phrase`` adjacent and in order (None: no word in it)."""
    if not _HAS_WORD.search(phrase):
        return None
    return '"' + " ".join(phrase.split()).replace('"', '""') + '"'


def _marked_range(marked: str) -> tuple[str, int, int]:
    """The plain text of a highlighted line and the character range from its first mark to its last."""
    plain: list[str] = []
    first = last = -1
    at = 0
    for ch in marked:
        if ch == MARK_OPEN:
            first = at if first < 0 else first
        elif ch == MARK_CLOSE:
            last = at
        else:
            plain.append(ch)
            at += 1
    return "".join(plain), max(first, 0), last if last >= 0 else at


def said_span(hit: TextHit) -> Said:
    """The quote of a matched line and when its matched words are spoken.

    With word times (a recognizer's line: its text is the words joined by spaces) the span runs
    from the first matched word's start to the last one's end. A subtitle line is timed only as
    a whole, so the span is interpolated by character position along the line.
    """
    text, a, b = _marked_range(hit.marked)
    words = words_from_json(hit.words)
    if words:
        offset = 0
        inside = []
        for word in words:
            w_end = offset + len(word.text)
            if w_end > a and offset < b:
                inside.append(word)
            offset = w_end + 1
        if inside:
            return Said(text, text[a:b], inside[0].start, inside[-1].end)
    length = max(len(text), 1)
    duration = hit.end - hit.start
    return Said(text, text[a:b], hit.start + duration * a / length, hit.start + duration * b / length)


@dataclass
class TranscriptRetriever:
    """Transcript lines matching the query's words (or ``phrase``), best BM25 first.

    ``phrase``: an exact phrase searched instead of the query's text (``--said``), so one query
    can ask the vectors for what is seen and the transcripts for what is said.
    """

    library: Library
    phrase: str | None = None
    name: str = "transcripts"

    def retrieve(self, query: RetrievalQuery) -> list[VideoHit]:
        """See :class:`vidsearch.retrieval.Retriever`; empty for a query without words."""
        if self.phrase is not None:
            match = phrase_query(self.phrase)
        else:
            match = words_query(query.text) if query.text else None
        if match is None:
            return []
        with self.library.session() as s:
            lines = search_lines(s, match, max(MIN_FETCH, FETCH_PER_RESULT * query.k))
        hits: list[VideoHit] = []
        seen_videos: set[int] = set()
        for line in lines:
            info = SegmentInfo(line.segment_id, line.video_id, line.path, "said", line.start, line.end, line.duration)
            if not query.filters.accepts(info):
                continue
            if query.group_by == "video":
                if line.video_id in seen_videos:
                    continue  # lines come best first: the video's first is its best
                seen_videos.add(line.video_id)
            said = said_span(line)
            hits.append(
                VideoHit(
                    len(hits) + 1,
                    line.path,
                    line.score,
                    said.start,
                    said.end,
                    line.duration,
                    line.video_id,
                    line.segment_id,
                    "said",
                    said=said,
                )
            )
            if len(hits) >= query.k:
                break
        return hits
