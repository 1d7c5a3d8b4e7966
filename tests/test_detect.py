"""Person detectors: the HOG detector's output contract, the torchvision path with a randomly
initialised small detector from a temporary file (loading and shapes, not accuracy), and the
one-line errors. No network: the missing-weights error is tested with the download refused."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the actors extra (opencv-python-headless) is not installed")
torchvision = pytest.importorskip("torchvision", reason="the actors extra (torchvision) is not installed")

from vidsearch.cli.errors import message as cli_message  # noqa: E402
from vidsearch.errors import InputError, ModelError, WeightsNotFoundError  # noqa: E402
from vidsearch.models.detect import HOGDetector, TorchvisionDetector, load_detector  # noqa: E402

SMALL = "ssdlite320_mobilenet_v3_large"


def check_contract(out: list, frames: int, threshold: float) -> None:
    assert len(out) == frames
    for boxes, scores in out:
        assert boxes.dtype == np.float32 and scores.dtype == np.float32
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and scores.shape == (boxes.shape[0],)
        assert np.all(scores >= threshold) and np.all(scores <= 1.0)
        assert np.all(np.diff(scores) <= 0)  # best first
        assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])


def person_frame(rng: np.random.Generator, h: int = 240, w: int = 160) -> np.ndarray:
    """A generated frame: noise background with a dark upright figure (head, torso, legs)."""
    img = rng.integers(150, 220, size=(h, w, 3), dtype=np.uint8)
    cx = w // 2
    yy, xx = np.mgrid[0:h, 0:w]
    img[(yy - 50) ** 2 + (xx - cx) ** 2 < 14**2] = 30
    img[64:150, cx - 18 : cx + 18] = 30
    img[150:220, cx - 16 : cx - 4] = 30
    img[150:220, cx + 4 : cx + 16] = 30
    return img


def test_hog_output_contract_on_generated_frames() -> None:
    rng = np.random.default_rng(0)
    det = load_detector("hog", threshold=0.0)
    assert isinstance(det, HOGDetector)
    frames = np.stack(
        [person_frame(rng), np.zeros((240, 160, 3), np.uint8), rng.integers(0, 255, (240, 160, 3), dtype=np.uint8)]
    )
    out = det.detect(frames)
    check_contract(out, 3, 0.0)
    assert out[1][0].shape == (0, 4)  # an empty (black) frame has nobody
    for boxes, _ in out:  # boxes lie in the frame
        assert np.all(boxes[:, :2] >= -8) and np.all(boxes[:, 2] <= 160 + 8) and np.all(boxes[:, 3] <= 240 + 8)
    # a frame smaller than HOG's 64 x 128 window: nobody fits, no error
    tiny = det.detect(np.zeros((1, 100, 50, 3), np.uint8))
    assert tiny[0][0].shape == (0, 4) and tiny[0][1].shape == (0,)
    # the threshold filters
    strict = load_detector("hog", threshold=0.99).detect(frames)
    check_contract(strict, 3, 0.99)


def test_detectors_reject_bad_frames() -> None:
    with pytest.raises(ValueError, match="uint8 frames"):
        load_detector("hog").detect(np.zeros((2, 64, 64), np.uint8))


def test_torchvision_detector_from_a_weights_file(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = torchvision.models.get_model(SMALL, weights=None, weights_backbone=None, num_classes=91)
    # random weights rarely put "person" first; bias its logit so candidates come out as people
    state = model.state_dict()
    for key, value in state.items():
        if key.startswith("head.classification_head") and key.endswith(".1.bias") and value.numel() % 91 == 0:
            value.view(-1, 91)[:, 1] += 8.0
    weights = tmp_path / "detector.pth"
    torch.save(state, weights)
    det = load_detector(f"torchvision:{SMALL}", weights, threshold=0.0, device="cpu", batch_size=2)
    assert isinstance(det, TorchvisionDetector) and det.name == f"torchvision:{SMALL}"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 120, 160, 3), dtype=np.uint8)
    out = det.detect(frames)
    check_contract(out, 3, 0.0)
    assert sum(len(s) for _, s in out) > 0  # candidates do come back, as boxes in frame pixels
    for boxes, _ in out:
        assert np.all(boxes[:, 2] <= 160 + 1e-3) and np.all(boxes[:, 3] <= 120 + 1e-3)


def test_a_weights_file_of_another_model_is_a_one_line_error(tmp_path: Path) -> None:
    import torch

    weights = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, weights)
    with pytest.raises(ModelError, match="do not fit ssdlite320"):
        load_detector(f"torchvision:{SMALL}", weights)


def test_offline_without_cached_weights_says_what_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def refuse(self, *a, **k):  # the network is not touched: the download is refused here
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", refuse)
    with pytest.raises(WeightsNotFoundError) as err:
        load_detector(f"torchvision:{SMALL}")
    msg = cli_message(err.value)  # as the CLI words it; the library's own hint names no flag
    assert "\n" not in msg and "download https://" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "--detector-weights" in msg and "--detector hog" in msg
    assert "weight-free detector" in str(err.value) and "--" not in str(err.value).split("(URLError)")[1]


def test_bad_detector_specs() -> None:
    with pytest.raises(InputError, match="unknown detector 'yolo'"):
        load_detector("yolo")
    with pytest.raises(InputError, match="choose one of .*fasterrcnn_resnet50_fpn_v2"):
        load_detector("torchvision:resnet50")
    with pytest.raises(InputError, match="hog has no weights"):
        load_detector("hog", "x.pth")
    with pytest.raises(InputError, match="no such file"):
        load_detector(f"torchvision:{SMALL}", "/nonexistent/w.pth")
    with pytest.raises(InputError, match="^detector_threshold must be in"):
        load_detector("hog", threshold=2.0)
