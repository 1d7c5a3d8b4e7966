"""Label sets, prompt ensembling and recognition annotation formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsearch.bench.recognition import read_recognition_annotations
from vidsearch.errors import InputError
from vidsearch.labels import LABEL_SETS, label_embeddings, label_text, load_label_set


@pytest.mark.parametrize(
    "name, count, first",
    [
        ("kinetics400", 400, "abseiling"),
        ("kinetics600", 600, "abseiling"),
        ("kinetics700", 700, "abseiling"),
        ("ucf101", 101, "ApplyEyeMakeup"),
        ("hmdb51", 51, "brush_hair"),
    ],
)
def test_shipped_label_sets(name, count, first):
    labels = load_label_set(name)
    assert len(labels) == count and labels[0] == first
    assert name in LABEL_SETS


def test_label_file_and_errors(tmp_path: Path):
    p = tmp_path / "mine.txt"
    p.write_text("jumping\n\nswimming  \n")
    assert load_label_set(p) == ["jumping", "swimming"]
    dup = tmp_path / "dup.txt"
    dup.write_text("Brush_Hair\nbrush hair\n")
    with pytest.raises(InputError, match="twice"):
        load_label_set(dup)
    with pytest.raises(InputError, match="kinetics400, kinetics600"):
        load_label_set("kinetics999")


def test_label_text():
    assert label_text("ApplyEyeMakeup") == "apply eye makeup"
    assert label_text("brush_hair") == "brush hair"
    assert label_text("air drumming") == "air drumming"
    assert label_text("YoYo") == "yo yo"
    assert label_text("PlayingTV") == "playing tv"


class _FakeEncoder:
    """Maps a prompt to a fixed 2-D direction so the ensemble can be computed by hand."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode_text(self, texts):
        self.calls.append(list(texts))
        out = []
        for t in texts:
            v = np.array([1.0, 0.0]) if t.startswith("a video") else np.array([0.0, 1.0])
            if "swim" in t:
                v = v[::-1]
            out.append(v)
        return np.asarray(out, np.float32)


def test_label_embeddings_average_and_renormalize():
    enc = _FakeEncoder()
    emb = label_embeddings(
        enc, ["Jumping", "swimming"], ["a video of {}.", "a video of a person {}.", "{} now"], batch_size=4
    )
    # jumping: two prompts -> [1, 0], one -> [0, 1]: mean [2/3, 1/3], renormalized
    np.testing.assert_allclose(emb[0], np.array([2, 1]) / np.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(emb[1], np.array([1, 2]) / np.sqrt(5), rtol=1e-6)
    assert [len(c) for c in enc.calls] == [4, 2]  # batched
    assert enc.calls[0][0] == "a video of jumping."  # label text, lower case
    with pytest.raises(ValueError, match="exactly one"):
        label_embeddings(enc, ["x"], ["no slot"])


CLASSES = ["brush_hair", "cartwheel", "catch", "ride_horse"]


def test_csv_names_indices_and_header(tmp_path: Path):
    p = tmp_path / "a.csv"
    p.write_text("video,label\nv1.mp4,brush hair\nv2,Cartwheel\nv3,2\n")
    rec = read_recognition_annotations(p, CLASSES)
    assert rec.videos == ["v1.mp4", "v2", "v3"] and rec.labels.tolist() == [0, 1, 2]
    q = tmp_path / "b.csv"
    q.write_text("v1;ride_horse\nv2;0\n")  # no header, ';'
    assert read_recognition_annotations(q, CLASSES).labels.tolist() == [3, 0]


def test_kinetics_csv(tmp_path: Path):
    p = tmp_path / "test.csv"
    p.write_text('label,youtube_id,time_start,time_end,split\ncatch,abc123,5,15,test\n"ride horse",xyz,0,10,test\n')
    rec = read_recognition_annotations(p, CLASSES)
    assert rec.videos == ["abc123_000005_000015", "xyz_000000_000010"]
    assert rec.labels.tolist() == [2, 3]


def test_list_files(tmp_path: Path):
    p = tmp_path / "list.txt"
    p.write_text("BrushHair/v_a.avi 0\nCatch/v_b.avi 2\n")
    assert read_recognition_annotations(p, CLASSES).labels.tolist() == [0, 2]
    ucf = tmp_path / "testlist01.txt"
    ucf.write_text("Ride_Horse/v_RideHorse_g01_c01.avi\nCatch/v_Catch_g01_c01.avi\n")
    rec = read_recognition_annotations(ucf, CLASSES)
    assert rec.videos[0] == "Ride_Horse/v_RideHorse_g01_c01.avi" and rec.labels.tolist() == [3, 2]


@pytest.mark.parametrize(
    "content, match",
    [
        ("video,label\nv1,flying\n", "not in the label set"),
        ("video,label\nv1,7\n", "out of range"),
        ("video,label\nv1\n", "expected video,label"),
        ("\n\n", "no annotations"),
    ],
)
def test_bad_annotations(tmp_path: Path, content: str, match: str):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=match):
        read_recognition_annotations(p, CLASSES)
