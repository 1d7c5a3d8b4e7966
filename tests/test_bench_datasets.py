"""Annotation readers on small files written here, plus the real MSR-VTT 1k-A CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidsearch.bench.datasets import (
    RetrievalSet,
    name_list,
    read_annotations,
    resolve_videos,
)
from vidsearch.errors import InputError

DATA = Path(__file__).parent / "data"
MSRVTT_CSV = DATA / "msrvtt_1kA_test.csv"


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_real_msrvtt_1ka_csv():
    rs = read_annotations("msrvtt", MSRVTT_CSV)
    assert len(rs.videos) == 1000 and len(rs.captions) == 1000
    assert rs.caption_video.tolist() == list(range(1000))
    assert rs.videos[0] == "video9770"
    assert rs.captions[0] == "a person is connecting something to system"
    assert rs.videos[1] == "video9771" and rs.captions[1] == "a little girl does gymnastics"
    assert not any(c.endswith("\r") for c in rs.captions)  # the file has CRLF line ends
    assert rs.name == "msrvtt" and not rs.paragraph


def test_msrvtt_csv_comma_and_separator_in_sentence(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('key,vid_key,video_id,sentence\nret0,msr1,video1,"a man, a dog"\nret1,msr2,video2,cats\n')
    rs = read_annotations("msrvtt", p)
    assert rs.videos == ["video1", "video2"] and rs.captions == ["a man, a dog", "cats"]
    q = tmp_path / "b.csv"
    q.write_text("key;vid_key;video_id;sentence\nret0;msr1;video1;first; then second\n")
    assert read_annotations("msrvtt", q).captions == ["first; then second"]
    bad = tmp_path / "c.csv"
    bad.write_text("a;b;c\n1;2;3\n")
    with pytest.raises(InputError, match="video_id"):
        read_annotations("msrvtt", bad)


def test_msrvtt_data_json_test_split(tmp_path):
    data = {
        "videos": [
            {"video_id": "video0", "split": "train"},
            {"video_id": "video7010", "split": "test"},
            {"video_id": "video7011", "split": "test"},
        ],
        "sentences": [
            {"video_id": "video7011", "caption": "b one", "sen_id": 0},
            {"video_id": "video0", "caption": "train caption", "sen_id": 1},
            {"video_id": "video7010", "caption": "a one", "sen_id": 2},
            {"video_id": "video7011", "caption": "b two", "sen_id": 3},
        ],
    }
    rs = read_annotations("msrvtt", _write(tmp_path / "MSRVTT_data.json", data))
    assert rs.videos == ["video7010", "video7011"]
    assert rs.captions == ["a one", "b one", "b two"]
    assert rs.caption_video.tolist() == [0, 1, 1]


def test_caption_list_str_and_list(tmp_path):
    data = [
        {"video": "video7020.mp4", "caption": "one"},
        {"video": "video7021.mp4", "caption": ["two a", "two b"]},
        {"video": "video7020.mp4", "caption": "one again"},
    ]
    rs = read_annotations("msrvtt", _write(tmp_path / "msrvtt_ret_test1k.json", data))
    assert rs.videos == ["video7020.mp4", "video7021.mp4"]
    assert rs.captions == ["one", "two a", "two b", "one again"]
    assert rs.caption_video.tolist() == [0, 1, 1, 0]


def test_vatex(tmp_path):
    data = [
        {"videoID": "abc_000010_000020", "enCap": [f"a{i}" for i in range(10)], "chCap": ["x"] * 10},
        {"videoID": "def_000000_000010", "enCap": [f"d{i}" for i in range(10)], "chCap": ["y"] * 10},
    ]
    rs = read_annotations("vatex", _write(tmp_path / "vatex_public_test_english_v1.1.json", data))
    assert rs.videos == ["abc_000010_000020", "def_000000_000010"]
    assert len(rs.captions) == 20 and rs.captions[10] == "d0"
    assert rs.caption_video.tolist() == [0] * 10 + [1] * 10


def test_msvd_txt_and_json(tmp_path):
    p = tmp_path / "AllVideoDescriptions.txt"
    p.write_text(
        "# header line\n-4wsuPCjDBc_5_15 a squirrel is eating\n-4wsuPCjDBc_5_15 a chipmunk eats\nvid2_1_3 a man sings\n"
    )
    rs = read_annotations("msvd", p)
    assert rs.videos == ["-4wsuPCjDBc_5_15", "vid2_1_3"]
    assert rs.captions == ["a squirrel is eating", "a chipmunk eats", "a man sings"]
    j = _write(tmp_path / "msvd_ret_test.json", [{"video": "vid2_1_3.avi", "caption": ["x", "y"]}])
    rs = read_annotations("msvd", j)
    assert rs.videos == ["vid2_1_3.avi"] and rs.caption_video.tolist() == [0, 0]


def test_didemo_original_and_list_become_paragraphs(tmp_path):
    original = [
        {"video": "a@N01_1.mov", "description": "a dog runs ", "times": [[0, 0]]},
        {"video": "b@N02_2.mp4", "description": "a car", "times": [[1, 1]]},
        {"video": "a@N01_1.mov", "description": " it jumps", "times": [[2, 2]]},
    ]
    rs = read_annotations("didemo", _write(tmp_path / "test_data.json", original))
    assert rs.paragraph
    assert rs.videos == ["a@N01_1.mov", "b@N02_2.mp4"]
    assert rs.captions == ["a dog runs it jumps", "a car"]
    assert rs.caption_video.tolist() == [0, 1]
    umt = [{"video": "a.mp4", "caption": ["first.", "second."]}, {"video": "b.mp4", "caption": "only"}]
    rs = read_annotations("didemo", _write(tmp_path / "didemo_ret_test.json", umt))
    assert rs.captions == ["first. second.", "only"]


def test_activitynet_original_and_list(tmp_path):
    original = {
        "v_abc": {"duration": 10.0, "timestamps": [[0, 5], [5, 10]], "sentences": ["A man enters.", " He sits down. "]},
        "v_def": {"duration": 3.0, "timestamps": [[0, 3]], "sentences": ["Rain."]},
    }
    rs = read_annotations("activitynet", _write(tmp_path / "val_1.json", original))
    assert rs.videos == ["v_abc", "v_def"]
    assert rs.captions == ["A man enters. He sits down.", "Rain."]
    lst = [{"video": "v_abc.mp4", "caption": ["x", "y"]}]
    assert read_annotations("activitynet", _write(tmp_path / "anet.json", lst)).captions == ["x y"]


def test_generic_json_keys_and_object(tmp_path):
    rs = read_annotations(
        "json", _write(tmp_path / "a.json", [{"video_id": "v1", "text": "t1"}, {"vid": "v2", "sentences": ["s", "t"]}])
    )
    assert rs.videos == ["v1", "v2"] and rs.captions == ["t1", "s", "t"]
    rs = read_annotations("json", _write(tmp_path / "b.json", {"v1": "c1", "v2": ["c2", "c3"]}))
    assert rs.caption_video.tolist() == [0, 1, 1]


def test_json_group_field_is_read_per_caption_and_kept_by_subset(tmp_path):
    entries = [
        {"video": "v1", "caption": "a red disc going left", "group": "red circle left"},
        {"video": "v2", "caption": ["a ball in red heading leftwards", "red ball, left"], "group": "red circle left"},
        {"video": "v3", "caption": "a blue box moving up"},
    ]
    rs = read_annotations("json", _write(tmp_path / "g.json", entries))
    assert rs.groups == ["red circle left", "red circle left", "red circle left", None]
    assert rs.subset([2, 1]).groups == ["red circle left", "red circle left", None]  # captions keep their order
    assert read_annotations("json", _write(tmp_path / "n.json", entries[2:])).groups is None
    with pytest.raises(InputError, match="'group'; it must be a string"):
        read_annotations("json", _write(tmp_path / "bad.json", [{"video": "v", "caption": "c", "group": 3}]))


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        ('[{"video": "v"}]', "no caption field"),
        ('[{"caption": "c"}]', "no video field"),
        ('[{"video": "v", "caption": 3}]', "string or a list"),
        ("[]", "no captions"),
        ('"text"', "expected a JSON list"),
    ],
)
def test_bad_json_is_one_line_input_error(tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        read_annotations("json", p)
    assert "\n" not in str(info.value)


def test_unknown_dataset_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="msrvtt, vatex"):
        read_annotations("kinetics", MSRVTT_CSV)
    with pytest.raises(InputError, match="does not exist"):
        read_annotations("json", tmp_path / "nope.json")


def test_subset_keeps_caption_order():
    rs = RetrievalSet(["a", "b", "c"], ["a1", "b1", "a2", "c1", "b2"], np.array([0, 1, 0, 2, 1]))
    sub = rs.subset([2, 0])
    assert sub.videos == ["c", "a"]
    assert sub.captions == ["a1", "a2", "c1"]
    assert sub.caption_video.tolist() == [1, 1, 0]


def test_resolve_videos(tmp_path):
    (tmp_path / "all").mkdir()
    for name in [
        "all/video1.mp4",
        "video2.avi",
        "video2.mp4",
        "sub/deep/clip3.webm",
        "v_xyz.mkv",
        "abc.mp4",
        "notes.txt",
    ]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    names = ["video1", "video2", "video2.avi", "clip3.mp4", "sub/deep/clip3", "xyz", "v_abc", "notes", "missing"]
    got = resolve_videos(names, tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() if p else None for p in got]
    assert rel == [
        "all/video1.mp4",  # by stem, in a subfolder
        "video2.mp4",  # .mp4 preferred over .avi
        "video2.avi",  # exact name
        "sub/deep/clip3.webm",  # other extension, by stem
        "sub/deep/clip3.webm",
        "v_xyz.mkv",  # ActivityNet prefix added
        "abc.mp4",  # and removed
        None,  # not a video extension
        None,
    ]
    with pytest.raises(InputError, match="not a directory"):
        resolve_videos(["a"], tmp_path / "nope")


def test_name_list():
    assert name_list(["a", "b"]) == "2 (a, b)"
    assert name_list([f"v{i}" for i in range(7)], first=3) == "7 (v0, v1, v2, ...)"
    assert name_list([f"v{i}" for i in range(7)], first=2, count=False) == "v0, v1, ..."
