"""Person detectors for actor tubes: torchvision detection models, or OpenCV's HOG people detector.

Every detector takes uint8 RGB frames ``[N, H, W, 3]`` and returns, per frame, the people it
found as ``(boxes, scores)``: float32 ``[K, 4]`` boxes ``(x1, y1, x2, y2)`` in that frame's
pixels and float32 ``[K]`` scores in ``[0, 1]``, best first, at least the detector's threshold
(an empty frame gives ``[0, 4]`` and ``[0]``).

Detectors by spec (:func:`load_detector`):

- ``torchvision:NAME``: any detection model of ``torchvision.models`` trained on COCO, e.g.
  ``fasterrcnn_resnet50_fpn_v2`` (the default), ``retinanet_resnet50_fpn_v2``,
  ``ssdlite320_mobilenet_v3_large``; the COCO ``person`` class is kept. Weights come from
  ``--detector-weights PATH`` (a state dict file), or through torchvision's weights API (its
  default weights, downloaded into the torch hub cache when online); offline with nothing cached
  the error says which file to download and where to put it. Frames are batched on the GPU when
  there is one.
- ``hog``: OpenCV's HOG + linear SVM pedestrian detector (Dalal and Triggs), which ships inside
  ``opencv-python-headless`` and needs no weights at all. It finds upright, fully visible people
  of at least 64 x 128 pixels; its SVM margins go through a logistic to give scores in ``[0, 1]``.

Both need the optional ``actors`` extra (``pip install 'vidsearch[actors]'``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vidsearch.errors import InputError, ModelError, WeightsNotFoundError
from vidsearch.models.checkpoint_io import error_line, read_state_dict
from vidsearch.models.precision import resolve_device

__all__ = [
    "Detections",
    "Detector",
    "TorchvisionDetector",
    "HOGDetector",
    "DEFAULT_DETECTOR",
    "load_detector",
    "describe",
]

LOG = logging.getLogger(__name__)

Detections = tuple[np.ndarray, np.ndarray]  # (boxes float32 [K, 4] xyxy pixels, scores float32 [K])

DEFAULT_DETECTOR = "torchvision:fasterrcnn_resnet50_fpn_v2"
COCO_PERSON = 1  # the person class of torchvision's COCO detection models (0 is background)
_EXTRA = "install the optional extra: pip install 'vidsearch[actors]'"


class Detector(Protocol):
    """What actor tubes need from a detector (module docstring)."""

    name: str
    threshold: float

    def detect(self, frames: np.ndarray) -> list[Detections]:
        """People in each of the uint8 frames ``[N, H, W, 3]``."""


def _empty() -> Detections:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"detect expects uint8 frames [N, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def _sorted(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> Detections:
    keep = scores >= threshold
    boxes, scores = boxes[keep].astype(np.float32), scores[keep].astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    return boxes[order].reshape(-1, 4), scores[order]


class TorchvisionDetector:
    """A torchvision COCO detection model, keeping people (module docstring).

    Args:
        model: the detection ``nn.Module`` (eval mode is set here).
        name: the spec it was loaded from.
        threshold: least score kept.
        device: where it runs.
        batch_size: frames per forward pass.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        threshold: float = 0.5,
        device: str | torch.device = "auto",
        batch_size: int = 8,
    ):
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.name = name
        self.threshold = float(threshold)
        self.batch_size = max(1, int(batch_size))

    @torch.inference_mode()
    def detect(self, frames: np.ndarray) -> list[Detections]:
        """People in each of the uint8 frames ``[N, H, W, 3]`` (module docstring)."""
        frames = _check_frames(frames)
        out: list[Detections] = []
        for lo in range(0, len(frames), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[lo : lo + self.batch_size])).to(self.device)
            images = list(chunk.permute(0, 3, 1, 2).float().div_(255.0))  # NHWC uint8 -> N x CHW in [0, 1]
            for res in self.model(images):
                person = res["labels"] == COCO_PERSON
                out.append(
                    _sorted(
                        res["boxes"][person].float().cpu().numpy(),
                        res["scores"][person].float().cpu().numpy(),
                        self.threshold,
                    )
                )
        return out


class HOGDetector:
    """OpenCV's HOG people detector (module docstring).

    Args:
        threshold: least score (logistic of the SVM margin) kept.
        stride: window stride in pixels.
        scale: image pyramid step.
        nms_iou: overlapping detections above this IoU are merged into the best one.
    """

    name = "hog"

    def __init__(self, threshold: float = 0.5, stride: int = 8, scale: float = 1.05, nms_iou: float = 0.5):
        try:
            import cv2
        except ImportError:
            raise ModelError("hog needs OpenCV", argument="detector", hint=f"{_EXTRA}") from None
        self._cv2 = cv2
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.threshold = float(threshold)
        self.stride = int(stride)
        self.scale = float(scale)
        self.nms_iou = float(nms_iou)

    def detect(self, frames: np.ndarray) -> list[Detections]:
        """People in each of the uint8 frames ``[N, H, W, 3]`` (module docstring)."""
        frames = _check_frames(frames)
        out: list[Detections] = []
        win_w, win_h = self.hog.winSize
        for frame in frames:
            if frame.shape[0] < win_h or frame.shape[1] < win_w:
                out.append(_empty())  # smaller than one detection window: nobody fits
                continue
            bgr = self._cv2.cvtColor(np.ascontiguousarray(frame), self._cv2.COLOR_RGB2BGR)
            rects, weights = self.hog.detectMultiScale(
                bgr, winStride=(self.stride, self.stride), padding=(8, 8), scale=self.scale
            )
            if len(rects) == 0:
                out.append(_empty())
                continue
            r = np.asarray(rects, np.float32).reshape(-1, 4)
            boxes = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)
            scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
            keep = np.asarray(self._cv2.dnn.NMSBoxes(r.tolist(), scores.tolist(), 0.0, self.nms_iou), np.int64).reshape(
                -1
            )
            out.append(_sorted(boxes[keep], scores[keep], self.threshold))
        return out


def _weights_enum(name: str) -> Any:
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        return None


def _detection_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.detection))


def _hub_state_dict(name: str, weights: Any) -> dict[str, torch.Tensor]:
    """The default weights of ``name`` from the torch hub cache, downloading them when online."""
    url = weights.url
    file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if file.is_file():
        return torch.load(file, map_location="cpu", weights_only=True)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # noqa: BLE001 -- URLError, socket errors, HTTP errors: all mean "not reachable"
        raise WeightsNotFoundError(
            f"detector weights for {name} are not cached and cannot be downloaded ({type(exc).__name__})",
            path=file,
            hint=f"download {url} to {file}, or give the detector's weights file, or use the weight-free detector",
            remedy="detector_weights",
            value=f"download {url} to {file}",
        ) from None


def load_detector(
    spec: str = DEFAULT_DETECTOR,
    weights: str | os.PathLike[str] | None = None,
    *,
    threshold: float | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 8,
) -> Detector:
    """A person detector by spec: ``torchvision:NAME`` or ``hog`` (module docstring).

    Args:
        spec: which detector.
        weights: a state dict file for a torchvision model (None: torchvision's default weights).
        threshold: least score kept (None: 0.5 for torchvision models, 0.5 for HOG).
        device: where a torchvision model runs.
        batch_size: frames per forward pass of a torchvision model.

    Raises:
        InputError: unknown spec, or weights given to ``hog``.
        ModelError: torchvision or OpenCV missing, or a weights file that does not fit.
        WeightsNotFoundError: default weights neither cached nor downloadable.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputError(f"must be in [0, 1] (got {threshold})", argument="detector_threshold")
    if spec == "hog":
        if weights is not None:
            raise InputError(
                "hog has no weights", argument="detector", hint="give no weights file", remedy="drop_detector_weights"
            )
        return HOGDetector(threshold=0.5 if threshold is None else threshold)
    kind, _, name = spec.partition(":")
    if kind != "torchvision" or not name:
        raise InputError(f"unknown detector {spec!r}; use torchvision:NAME (e.g. {DEFAULT_DETECTOR}) or hog")
    try:
        import torchvision
    except ImportError:
        raise ModelError(f"{spec} needs torchvision", argument="detector", hint=f"{_EXTRA}") from None
    names = _detection_models()
    if name not in names:
        raise InputError(f"unknown torchvision detection model {name!r}; choose one of {', '.join(names)}")
    # built without weights (no download), then loaded from the file or the hub cache
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=91)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: no such file", argument="detector_weights")
        state = read_state_dict(path, mmap=False)
    else:
        default = _weights_enum(name)
        if default is None:
            raise InputError(
                f"torchvision has no default weights for {name}",
                hint="give the detector's weights file",
                remedy="detector_weights_file",
            )
        state = _hub_state_dict(name, default)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"detector weights {weights or name} do not fit {name}: {error_line(exc)}") from None
    LOG.info("detector %s loaded (%s)", spec, weights or "torchvision default weights")
    return TorchvisionDetector(
        model, spec, threshold=0.5 if threshold is None else threshold, device=device, batch_size=batch_size
    )


def describe(detector: Detector) -> str:
    """A short name of a detector for stored results."""
    return f"{detector.name}@{detector.threshold:g}"
