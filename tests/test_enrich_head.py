"""Trained open-set heads: the evidential loss, training, the head file, and `enrich train-head` / `recognize --head`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import videogen
from test_cli_hardening import one_line_error, run_main

from vidsearch.bench.openset import open_set_figures
from vidsearch.bench.recognition import read_recognition_annotations
from vidsearch.enrich.head import HeadConfig, check_class_counts, check_space, load_head, save_head, train_head
from vidsearch.errors import InputError
from vidsearch.labels import OpenSetRule
from vidsearch.metrics import auroc, open_set_macro_f1
from vidsearch.models.evidential import annealing, dirichlet_uncertainty, edl_loss, evidence, kl_to_uniform


def _toy(rng: np.random.Generator, centres: np.ndarray, classes: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([centres[c] + 0.35 * rng.normal(size=(n, centres.shape[1])) for c in classes])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(len(classes)), n)


@pytest.fixture(scope="module")
def toy() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 24))
    x, y = _toy(rng, centres, [0, 1, 2, 3], 30)
    xt, yt = _toy(rng, centres, [0, 1, 2, 3], 15)
    u, _ = _toy(rng, centres, [4, 5], 15)
    return {"x": x, "y": y, "xt": xt, "yt": yt, "u": u}


# ---------------------------------------------------------------------------------------------
# the evidential math


def test_no_evidence_is_full_uncertainty_and_kl_of_uniform_is_zero() -> None:
    alpha = evidence(torch.full((2, 5), -50.0), "relu") + 1.0
    assert torch.allclose(dirichlet_uncertainty(alpha), torch.ones(2))
    assert torch.allclose(kl_to_uniform(torch.ones(3, 4)), torch.zeros(3), atol=1e-6)
    assert float(kl_to_uniform(torch.tensor([[5.0, 1.0, 1.0]]))) > 0.1
    assert float(evidence(torch.tensor([100.0]), "exp")) == pytest.approx(np.exp(10.0), rel=1e-5)  # clamped


@pytest.mark.parametrize("form", ["log", "digamma", "mse"])
def test_edl_loss_prefers_evidence_for_the_true_class(form: str) -> None:
    y = torch.tensor([0, 1])
    right = torch.tensor([[4.0, -4.0, -4.0], [-4.0, 4.0, -4.0]])
    wrong = torch.tensor([[-4.0, 4.0, -4.0], [4.0, -4.0, -4.0]])
    for kl in (0.0, 1.0):
        assert float(edl_loss(right, y, kl_weight=kl, form=form)) < float(edl_loss(wrong, y, kl_weight=kl, form=form))
    # the KL term penalizes evidence for the wrong classes only
    assert float(edl_loss(wrong, y, kl_weight=1.0, form=form)) > float(edl_loss(wrong, y, kl_weight=0.0, form=form))
    assert annealing(0) == 0.0 and annealing(5) == 0.5 and annealing(30) == 1.0


# ---------------------------------------------------------------------------------------------
# training, scores, the file


@pytest.mark.parametrize("loss", ["edl", "edl-nokl", "ce"])
def test_training_converges_on_a_separable_set(toy: dict[str, np.ndarray], loss: str) -> None:
    head = train_head(toy["x"], toy["y"], list("abcd"), "space-a", HeadConfig(loss=loss, epochs=40, hidden=32))
    _, probs, known = head.predict(toy["xt"])
    _, _, unknown = head.predict(toy["u"])
    assert np.mean(probs.argmax(axis=1) == toy["yt"]) == 1.0
    assert auroc(known, unknown) > 0.9
    # random unit vectors are far from every class: a head whose score ran the wrong way would rank them known
    rand = np.random.default_rng(1).normal(size=(50, toy["x"].shape[1]))
    assert auroc(known, head.predict((rand / np.linalg.norm(rand, axis=1, keepdims=True)).astype(np.float32))[2]) > 0.9
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert head.rule.kind == ("msp" if loss == "ce" else "evidence")
    assert head.calibration["heldout_top1"] == 100.0 and head.calibration["threshold_method"] == "known-quantile"
    assert head.training["clips"] + head.training["heldout"] == len(toy["y"]) and head.training["final_loss"] < 0.5


def test_unknown_clips_choose_the_threshold_by_youden(toy: dict[str, np.ndarray]) -> None:
    head = train_head(toy["x"], toy["y"], list("abcd"), "s", HeadConfig(epochs=10, hidden=0), unknown=toy["u"])
    cal = head.calibration
    assert cal["threshold_method"] == "youden" and cal["unknown_videos"] == len(toy["u"])
    assert cal["fpr"] is not None and 0.0 <= cal["auroc"] <= 1.0 and cal["tpr"] - cal["fpr"] >= 0.0


def test_saved_head_round_trips(toy: dict[str, np.ndarray], tmp_path: Path) -> None:
    head = train_head(toy["x"], toy["y"], list("abcd"), "space-a", HeadConfig(epochs=5, hidden=16, seed=3))
    path = save_head(head, tmp_path / "h.safetensors")
    again = load_head(path)
    assert (again.classes, again.space_key, again.dim, again.config) == (head.classes, "space-a", 24, head.config)
    assert again.rule == head.rule and again.calibration == head.calibration
    assert np.array_equal(again.logits(toy["xt"]), head.logits(toy["xt"]))
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    check_space(again, "space-a")
    with pytest.raises(InputError, match="trained on embeddings of space space-a, not space-b"):
        check_space(again, "space-b")


def test_cosine_heads_bound_the_evidence_and_dense_heads_do_not(toy: dict[str, np.ndarray]) -> None:
    """A cosine head's logits are ``scale * cos``: at most ``scale`` however far an input lies.

    A dense head's logits grow with the input, so an input scaled up gets more evidence than
    any training clip: the geometry that made unknown clips look known (docs/enrich.md).
    """
    far = 50.0 * toy["u"]  # the unknown clips pushed far away from the unit sphere
    cos = train_head(toy["x"], toy["y"], list("abcd"), "s", HeadConfig(kind="cosine", epochs=20, hidden=16))
    assert np.abs(cos.logits(far)).max() <= cos.config.scale + 1e-4
    assert "layer1.bias" not in cos.tensors  # prototypes, no bias to shift the evidence
    dense = train_head(toy["x"], toy["y"], list("abcd"), "s", HeadConfig(kind="dense", epochs=20, hidden=16))
    assert dense.predict(far)[2].mean() > dense.predict(toy["u"])[2].mean()


def test_heads_written_before_output_kinds_load_as_dense(toy: dict[str, np.ndarray], tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    head = train_head(toy["x"], toy["y"], list("abcd"), "s", HeadConfig(kind="dense", epochs=5, hidden=16))
    meta = head.meta()
    for key in ("kind", "scale"):
        del meta["config"][key]  # the metadata of a head file of an earlier version
    old = tmp_path / "old.safetensors"
    save_file(
        load_file(str(save_head(head, tmp_path / "h.safetensors"))), str(old), {"vidsearch.head": json.dumps(meta)}
    )
    again = load_head(old)
    assert again.config.kind == "dense" and again.config == head.config
    assert np.array_equal(again.logits(toy["xt"]), head.logits(toy["xt"]))


def test_unreadable_head_files_are_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(InputError, match="not a safetensors file"):
        load_head(bad)
    with pytest.raises(InputError, match="no such file"):
        load_head(tmp_path / "missing.safetensors")
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InputError, match="not a vidsearch head"):
        load_head(tmp_path / "other.safetensors")


def test_class_counts_are_checked() -> None:
    with pytest.raises(InputError, match="'c' has no clips"):
        check_class_counts(np.array([0, 0, 1, 1]), ["a", "b", "c"])
    with pytest.raises(InputError, match="'b' has only one clip"):
        check_class_counts(np.array([0, 0, 1]), ["a", "b"])
    with pytest.raises(InputError, match="^loss must be one of"):
        HeadConfig(loss="focal")


def test_head_rules_carry_the_evidence_score() -> None:
    assert OpenSetRule("evidence", 1.0, 0.7).unknown(np.array([0.6, 0.8])).tolist() == [True, False]
    with pytest.raises(InputError):
        OpenSetRule("bogus", 1.0, 0.5)


# ---------------------------------------------------------------------------------------------
# figures and annotations


def test_macro_f1_counts_unknown_as_a_class() -> None:
    assert open_set_macro_f1(np.array([0, 1, 2]), np.array([0, 1, 2]), 2) == 100.0
    # class 0 perfect, class 1 never predicted (F1 0), unknown: 1 right of 2 predicted, 1 true -> 2/3
    f1 = open_set_macro_f1(np.array([0, 2, 2]), np.array([0, 1, 2]), 2)
    assert f1 == pytest.approx(100.0 * (1.0 + 0.0 + 2 / 3) / 3)
    figs = open_set_figures(
        np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0.9, 0.8]), np.array([0, 1]),
        np.array([[0.6, 0.4]]), np.array([0.3]), threshold=0.5,
    )  # fmt: skip
    assert figs["closed_top1"] == 100.0 and figs["auroc"] == 100.0 and figs["macro_f1"] == 100.0
    assert figs["unknown_kept"] == 0.0


def test_ucf_trainlist_lines_take_the_class_from_the_folder(tmp_path: Path) -> None:
    lst = tmp_path / "trainlist01.txt"
    lst.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBandMarching/v_BandMarching_g01_c01.avi 6\n")
    rec = read_recognition_annotations(lst, ["ApplyEyeMakeup", "ApplyLipstick", "BandMarching"])
    assert rec.labels.tolist() == [0, 2]
    plain = tmp_path / "hmdb.txt"
    plain.write_text("brush_hair/a.avi\nclap/b.avi\nc.avi clap\n")
    assert read_recognition_annotations(plain, ["brush_hair", "clap"]).labels.tolist() == [0, 1, 1]


def test_classes_the_embeddings_cannot_separate_leave_known_clips_the_least_evidence() -> None:
    """Why the synthetic proof's actions AUROC fell below 50 with a model that barely encodes them.

    Four classes drawn around one centre (their labels carry no signal the embeddings show) and
    unknown clips far from it: the KL term rightly takes the evidence of the known clips to
    nothing, and the far clips, where the head was never trained, keep more. The embeddings
    themselves (the cosine to the nearest class mean) rank the far clips unknown.
    """
    rng = np.random.default_rng(0)
    centre, far = rng.normal(size=24), rng.normal(size=24)

    def around(c: np.ndarray, n: int) -> np.ndarray:
        x = c + 0.3 * rng.normal(size=(n, 24))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    x, y = around(centre, 160), np.arange(160) % 4
    xt, u = around(centre, 40), around(far, 40)
    head = train_head(x, y, list("abcd"), "s", HeadConfig(kind="dense", hidden=0))
    assert head.calibration["heldout_top1"] < 50.0  # chance is 25
    assert auroc(head.predict(xt)[2], head.predict(u)[2]) < 0.5
    means = np.stack([x[y == c].mean(axis=0) for c in range(4)])
    assert auroc((xt @ means.T).max(axis=1), (u @ means.T).max(axis=1)) > 0.9


def test_the_synthetic_proof_keeps_known_and_unknown_clips_apart(tmp_path: Path) -> None:
    """benchmarks/openset_head_synthetic.py: its data, labels and splits (a smaller run of them)."""
    import hashlib
    import importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        bench = importlib.import_module("openset_head_synthetic")
    finally:
        sys.path.pop(0)
    splits = bench.make_splits(tmp_path, [0], per_class=1, test_per_class=1, unknown=[4, 2])
    actions = bench.tasks()["actions"]
    for name in ("train0", "test_known"):
        assert all(actions.class_of(r) in range(len(bench.CLASSES)) for r in splits[name])
    for name in ("test_unknown", "test_heldout"):
        assert splits[name] and all(actions.class_of(r) is None for r in splits[name])
        assert not {r["shape"] for r in splits[name]} & set(bench.KNOWN_SHAPES)

    def digests(name: str) -> set[str]:
        return {hashlib.sha256((tmp_path / "data" / name / r["video"]).read_bytes()).hexdigest() for r in splits[name]}

    assert not digests("train0") & (digests("test_known") | digests("test_unknown") | digests("test_heldout"))
    colours = bench.tasks()["colours"]
    white = [r for r in splits["test_known"] + splits["test_unknown"] if r["colour"] == bench.UNKNOWN_COLOUR]
    assert all(colours.class_of(r) is None for r in white + splits["test_heldout"])


# ---------------------------------------------------------------------------------------------
# end to end: train-head on the library's vectors, recognize --head, bench open-set --head


@pytest.fixture(scope="module")
def lib_setup(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("head-cli")
    videos = root / "videos"
    colours = {"red": (210, 40, 40), "green": (40, 200, 40), "blue": (40, 60, 220)}
    for name, rgb in colours.items():
        for i, pattern in enumerate(("gradient", "moving_square", "gradient")):
            videogen.write_video(videos / f"{name}{i}.mp4", seconds=1, fps=8, pattern=pattern, color=rgb)
    (root / "colours.txt").write_text("red\ngreen\n")
    (root / "known.csv").write_text(
        "video,label\n" + "".join(f"{c}{i},{c}\n" for c in ("red", "green") for i in range(3))
    )
    (root / "unknown.csv").write_text("video\nblue0\nblue1\nblue2\n")
    lib = root / "lib"
    code, out, err = run_main(
        "index", str(videos), "--library", str(lib), "--model", str(tiny_checkpoint), "--workers", "1"
    )
    assert code == 0, err
    return {"root": root, "videos": videos, "lib": lib, "ckpt": tiny_checkpoint}


def _train(s: dict[str, Path], *extra: str) -> tuple[int, str, str]:
    root = s["root"]
    return run_main(
        "enrich", "train-head", "--library", str(s["lib"]), "--labels", str(root / "colours.txt"),
        "--annotations", str(root / "known.csv"), "--videos", str(s["videos"]), "--epochs", "20", "--hidden", "16",
        "--bench-library", str(root / "bench"), *extra,
    )  # fmt: skip


def test_train_head_uses_stored_vectors_and_recognize_labels_only_new_segments(lib_setup: dict[str, Path]) -> None:
    s, root = lib_setup, lib_setup["root"]
    head_path = root / "colours.head.safetensors"
    code, out, err = _train(s, "--out", str(head_path), "--unknown", str(root / "unknown.csv"), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["from_library"] == 9 and summary["encoded"] == 0  # nothing decoded: all indexed
    assert summary["calibration"]["threshold_method"] == "youden" and summary["rule"]["kind"] == "evidence"

    lib = str(s["lib"])
    code, out, err = run_main("enrich", "recognize", "--library", lib, "--head", str(head_path), "--json")
    assert code == 0, err
    first = json.loads(out)
    assert (first["labelled"], first["videos"], first["already"]) == (9, 9, 0)
    code, out, err = run_main("enrich", "recognize", "--library", lib, "--head", str(head_path), "--json")
    assert (json.loads(out)["labelled"], json.loads(out)["already"]) == (0, 9)
    # another threshold relabels from the stored vectors, and is kept by the next plain run
    code, out, err = run_main(
        "enrich", "recognize", "--library", lib, "--head", str(head_path), "--threshold", "2", "--json"
    )
    moved = json.loads(out)
    assert moved["relabelled"] and moved["unknown"] == 9 and moved["rule"]["threshold"] == 2.0
    code, out, err = run_main("enrich", "recognize", "--library", lib, "--head", str(head_path), "--json")
    assert not json.loads(out)["relabelled"] and json.loads(out)["rule"]["threshold"] == 2.0
    code, out, err = run_main("enrich", "recognize", "--library", lib, "--head", str(head_path), "--json",
                              "--threshold", str(summary["rule"]["threshold"]))  # fmt: skip
    assert json.loads(out)["relabelled"]

    videogen.write_video(s["videos"] / "red9.mp4", seconds=1, fps=8, pattern="gradient", color=(210, 40, 40))
    code, _, err = run_main("index", str(s["videos"]), "--library", lib, "--model", str(s["ckpt"]), "--workers", "1")
    assert code == 0, err
    code, out, err = run_main("enrich", "recognize", "--library", lib, "--head", str(head_path), "--json")
    again = json.loads(out)
    assert (again["labelled"], again["already"]) == (1, 9)

    code, out, err = run_main("labels", str(s["videos"] / "red0.mp4"), "--library", lib, "--json")
    (ls,) = json.loads(out)["label_sets"]
    assert ls["label_set"] == head_path.name and ls["rule"]["kind"] == "evidence"
    assert ls["labels"][0]["label"] in ("red", "green")
    assert abs(sum(lab["prob"] for lab in ls["labels"]) - 1.0) < 1e-3
    # query --label and the web page's filter: the head is a label set named by its file
    from vidsearch.enrich.recognize import videos_with_label
    from vidsearch.store.library import Library

    with Library.open(s["lib"]) as library:
        every = videos_with_label(library, "Red", label_set=head_path.name, max_rank=2, include_unknown=True)
        assert len(every) == 10
        with pytest.raises(InputError, match="did you mean"):
            videos_with_label(library, "redd", label_set=head_path.name)

    # bench open-set: the head beside the zero-shot rule on the same videos (from the bench cache)
    code, out, err = run_main(
        "bench", "open-set", "--known", str(root / "known.csv"), "--known-videos", str(s["videos"]),
        "--unknown", str(root / "unknown.csv"), "--known-labels", str(root / "colours.txt"),
        "--model", str(s["ckpt"]), "--library", str(root / "bench"), "--head", str(head_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    h = res["heads"][head_path.name]
    assert h["loss"] == "edl" and 0.0 <= h["auroc"] <= 100.0 and 0.0 <= h["macro_f1"] <= 100.0
    assert "macro_f1" in res["metrics"]["operating_point"]


def test_bad_inputs_are_one_line_exit_2(lib_setup: dict[str, Path], toy: dict[str, np.ndarray]) -> None:
    s, root = lib_setup, lib_setup["root"]
    (root / "ghost.csv").write_text("video,label\nred0,red\nred1,red\ngreen0,green\nnosuch,green\n")
    code, _, err = run_main(
        "enrich", "train-head", "--library", str(s["lib"]), "--labels", str(root / "colours.txt"),
        "--annotations", str(root / "ghost.csv"), "--videos", str(s["videos"]), "--bench-library", str(root / "bench"),
        "--out", str(root / "x.safetensors"),
    )  # fmt: skip
    one_line_error(code, err, "nosuch")

    (root / "three.txt").write_text("red\ngreen\nyellow\n")
    code, _, err = _train(s, "--labels", str(root / "three.txt"), "--out", str(root / "y.safetensors"))
    one_line_error(code, err, "'yellow' has no clips")

    (root / "one.csv").write_text("video,label\nred0,red\nred1,red\ngreen0,green\n")
    code, _, err = _train(s, "--annotations", str(root / "one.csv"), "--out", str(root / "z.safetensors"))
    one_line_error(code, err, "'green' has only one clip")

    code, _, err = _train(s, "--head-kind", "round", "--out", str(root / "k.safetensors"))
    one_line_error(code, err, "--head-kind")
    code, _, err = _train(s, "--scale", "0", "--out", str(root / "s.safetensors"))
    one_line_error(code, err, "--scale")

    # a head of another space is refused in one line
    other = train_head(toy["x"], toy["y"], list("abcd"), "viclip-other@0000", HeadConfig(epochs=2, hidden=0))
    save_head(other, root / "other.safetensors")
    code, _, err = run_main(
        "enrich", "recognize", "--library", str(s["lib"]), "--head", str(root / "other.safetensors")
    )
    one_line_error(code, err, "viclip-other@0000")

    code, _, err = run_main("enrich", "recognize", "--library", str(s["lib"]), "--head", str(root / "three.txt"))
    one_line_error(code, err, "not a safetensors file")
