"""The use-case layer: one search for every query kind, the space resolver, fusion, removal.

The library is built by the real indexer and store with the fake decode/encode stages of
``test_index_stages`` (milliseconds per file); "more like this" needs no model (stored vectors).
Text, clip and upload queries through the real tiny model are covered by test_serve_api and
test_cli_index_query, which both run this same use case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_store_hardening import fake_index, make_files

from vidsearch.cli.errors import message as cli_message
from vidsearch.errors import InputError, LibraryError
from vidsearch.retrieval import RRF_K, fuse
from vidsearch.search import VideoHit
from vidsearch.store.library import Library
from vidsearch.usecases.encoders import LocalEmbedder
from vidsearch.usecases.query import MomentRef, Query, QueryFilters, check_query, search
from vidsearch.usecases.remove import CONFIRM_OVER, remove_videos
from vidsearch.usecases.spaces import resolve_space


def _hit(video_id: int, score: float, start: float = 0.0, end: float = 2.0) -> VideoHit:
    return VideoHit(0, f"/v/{video_id}.mp4", score, start, end, 2.0, video_id, video_id * 10, "video")


# ------------------------------------------------------------------------------ fusion


def test_fusion_of_one_retriever_keeps_its_list() -> None:
    hits = [_hit(3, 0.9), _hit(1, 0.5), _hit(2, 0.1)]
    fused = fuse({"vectors": hits}, 10)
    assert [(h.video_id, h.score, h.rank) for h in fused] == [(3, 0.9, 1), (1, 0.5, 2), (2, 0.1, 3)]
    assert all(h.matched == ("vectors",) for h in fused)
    assert [h.video_id for h in fuse({"vectors": hits}, 2)] == [3, 1]


def test_fusion_ranks_what_several_retrievers_find_first() -> None:
    vectors = [_hit(1, 0.9), _hit(2, 0.8), _hit(3, 0.7)]
    transcripts = [_hit(3, 12.5, 0.5, 1.5), _hit(4, 3.0)]  # its own score scale (BM25) and span
    fused = fuse({"vectors": vectors, "transcripts": transcripts}, 10)
    # 3: 1/63 + 1/61; 1: 1/61; 2 and 4: 1/62 each, the tie goes to the higher-priority retriever's
    assert [h.video_id for h in fused] == [3, 1, 2, 4]
    top = fused[0]
    assert top.matched == ("vectors", "transcripts")
    assert (top.score, top.start, top.end) == (0.7, 0.0, 2.0)  # the higher-priority retriever's hit
    assert fused[3].matched == ("transcripts",) and fused[3].score == 3.0
    assert 1 / (RRF_K + 3) + 1 / (RRF_K + 1) > 1 / (RRF_K + 1)


def test_fusion_by_moment_merges_overlapping_moments_only() -> None:
    a = [_hit(1, 0.9, 0.0, 4.0), _hit(1, 0.8, 8.0, 12.0)]
    b = [_hit(1, 5.0, 1.0, 4.0), _hit(1, 4.0, 20.0, 24.0)]  # overlaps the first by 3/4; the last by nothing
    fused = fuse({"vectors": a, "transcripts": b}, 10, group_by="moment")
    assert [(h.start, h.matched) for h in fused] == [
        (0.0, ("vectors", "transcripts")),
        (8.0, ("vectors",)),
        (20.0, ("transcripts",)),
    ]


# ------------------------------------------------------------------------- the library


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """Four fake videos under videos/a and four under videos/b, indexed."""
    make_files(tmp_path / "videos" / "a", 4, prefix="a")
    make_files(tmp_path / "videos" / "b", 4, prefix="b")
    with Library.open(tmp_path / "lib") as lib:
        fake_index(lib, tmp_path / "videos")
    return tmp_path / "lib"


def _video_ids(lib: Library) -> dict[str, int]:
    from vidsearch.usecases.videos import videos_page

    return {Path(v.path).name: v.id for v in videos_page(lib, limit=100)}


def test_more_like_this_leaves_out_the_source_and_honours_the_filters(library: Path) -> None:
    with Library.open(library, create=False) as lib:
        ids = _video_ids(lib)
        source = MomentRef(ids["a0.mp4"], 0.0, 2.0)
        page = search(lib, Query(moment=source, k=20), LocalEmbedder("cpu"))
        assert page.space is not None and page.hits
        assert ids["a0.mp4"] not in [h.video_id for h in page.hits]  # never the source itself
        assert len(page.hits) == 7 and [h.rank for h in page.hits] == list(range(1, 8))
        assert all(h.matched == ("vectors",) for h in page.hits)
        in_b = search(lib, Query(moment=source, k=20, filters=QueryFilters(folder="b")), LocalEmbedder("cpu"))
        assert {Path(h.path).name for h in in_b.hits} == {"b0.mp4", "b1.mp4", "b2.mp4", "b3.mp4"}
        glob = search(lib, Query(moment=source, k=20, filters=QueryFilters(path_glob="a*")), LocalEmbedder("cpu"))
        assert {Path(h.path).name for h in glob.hits} == {"a1.mp4", "a2.mp4", "a3.mp4"}
        moments = search(lib, Query(moment=source, k=20, group_by="moment"), LocalEmbedder("cpu"))
        assert all(h.video_id != source.video_id or h.end <= 0.0 for h in moments.hits)


def test_paging_cuts_one_ranked_list(library: Path) -> None:
    with Library.open(library, create=False) as lib:
        source = MomentRef(_video_ids(lib)["b1.mp4"], 0.0, 2.0)
        whole = search(lib, Query(moment=source, k=20), LocalEmbedder("cpu"))
        pages, offset = [], 0
        while True:
            page = search(lib, Query(moment=source, k=3, offset=offset), LocalEmbedder("cpu"))
            pages.extend(page.hits)
            offset += 3
            if not page.more:
                break
        assert [(h.video_id, h.rank) for h in pages] == [(h.video_id, h.rank) for h in whole.hits]
        assert not whole.more


def test_a_moment_of_an_unknown_video_is_not_found(library: Path) -> None:
    from vidsearch.usecases.videos import NotFound

    with Library.open(library, create=False) as lib, pytest.raises(NotFound, match="no video 999"):
        search(lib, Query(moment=MomentRef(999, 0.0, 1.0)), LocalEmbedder("cpu"))


def test_an_empty_library_gives_an_empty_page(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        page = search(lib, Query(text="a dog"), LocalEmbedder("cpu"))
    assert page.hits == [] and page.space is None and not page.more


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (Query(), "exactly one"),
        (Query(text="a", moment=MomentRef(1, 0, 1)), "exactly one"),
        (Query(text="  "), "empty"),
        (Query(text="a", start=1.0), "^start/end only apply to queries by a video clip"),
        (Query(text="a", filters=QueryFilters(label_set="ucf101")), "label set"),
        (Query(text="a", k=0), "at least 1"),
        (Query(text="a", offset=-1), "offset"),
    ],
)
def test_bad_queries_fail_before_anything_loads(query: Query, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_query(query)


# --------------------------------------------------------------------- the one resolver


def test_one_space_resolver(library: Path) -> None:
    with Library.open(library, create=False) as lib:
        (space,) = lib.spaces()
        assert space.key == "fake@0"
        assert resolve_space(lib).key == space.key
        assert resolve_space(lib, "fake@0").key == space.key
        assert resolve_space(lib, "fake").key == space.key  # a key's name before "@"
        with pytest.raises(LibraryError, match="not an embedding space"):
            resolve_space(lib, "nonesuch")
        with pytest.raises(LibraryError, match="no embeddings for model 'fake'"):
            lib.space("fake")  # the store matches exact keys only; names are the resolver's


# ---------------------------------------------------------------------------- removal


def test_remove_asks_before_forgetting_a_folder(library: Path) -> None:
    folder = library.parent / "videos"
    with Library.open(library) as lib:
        dry = remove_videos(lib, [str(folder)], dry_run=True)
        assert dry.dry_run and len(dry.found) == 8 > CONFIRM_OVER and dry.removed == 0
        with pytest.raises(InputError, match="confirm to remove them") as err:
            remove_videos(lib, [str(folder)])
        assert "pass --yes" in cli_message(err.value)
        with pytest.raises(InputError, match="empty"):
            remove_videos(lib, [" "])
        done = remove_videos(lib, [str(folder / "a")])
        assert done.removed == 4 and not done.dry_run
        assert len(lib.vector_index(lib.spaces()[0]).ids()) == 8  # four videos, two segments each
