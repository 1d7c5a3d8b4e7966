"""A trained classifier head on frozen embeddings: evidential (EDL) or cross-entropy, its open-set rule, its file.

A *head* is a small network (linear or a 2-layer MLP, :class:`vidsearch.models.evidential.HeadNet`)
trained on the whole-video embeddings of one embedding space to tell the user's own classes
apart. It is trained with

* ``edl``: the evidential loss with the KL regulariser annealed in over the first epochs
  (:mod:`vidsearch.models.evidential`); its *known score* is ``1 - u`` with ``u = K / S`` the
  Dirichlet uncertainty (score kind ``evidence``);
* ``edl-nokl``: the same without the KL term (the InternVideo guide's ``edl_nokl`` recipe);
* ``ce``: plain cross-entropy, for comparison; its known score is the maximum softmax
  probability (``msp``) of the logits.

The open-set threshold is chosen the way ``enrich calibrate`` chooses one
(:func:`vidsearch.enrich.openset.choose_threshold`), on known clips held out of training (a
share ``holdout`` of each class, at least one) and, when given, on clips of unknown classes:
the threshold keeping ``keep`` of the held-out known clips, or the one maximizing TPR - FPR.

**File format** (safe to load: no pickle): a safetensors file with the head's tensors
(``layer{i}.weight``/``layer{i}.bias`` of its linear layers, no bias for a cosine head's output
layer; ``prototypes``: the normalized mean embedding of each class) and one metadata entry
``vidsearch.head``, JSON: format version, the
space key the embeddings came from, the dimension, the classes, the architecture, the training
settings and figures, the open-set rule and the account of its calibration. A head is used only
on its own space (:func:`check_space`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.enrich.openset import DEFAULT_KEEP, choose_threshold
from vidsearch.errors import InputError
from vidsearch.fileio import atomic_write
from vidsearch.labels import OpenSetRule
from vidsearch.metrics import auroc, softmax

__all__ = [
    "LOSSES",
    "HeadConfig",
    "TrainedHead",
    "check_class_counts",
    "train_head",
    "save_head",
    "load_head",
    "check_space",
]

LOG = logging.getLogger(__name__)

LOSSES: tuple[str, ...] = ("edl", "edl-nokl", "ce")
FORMAT_VERSION = 1
_META_KEY = "vidsearch.head"


@dataclass(frozen=True)
class HeadConfig:
    """How a head is built and trained.

    Attributes:
        loss: ``edl``, ``edl-nokl`` or ``ce``.
        kind: output layer, ``cosine`` (logits ``scale * cos(h, w_c)``: bounded evidence, highest
            near a class prototype) or ``dense`` (affine; heads written before kinds existed).
        scale: the cosine layer's fixed logit scale.
        hidden: width of the hidden layer; 0: a linear head.
        epochs: passes over the training clips.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: clips per step; 0: automatic, ``n / 40`` within 32-512 for ``n`` training
            clips (about 40 steps an epoch: small sets still get enough steps, large ones are
            not slowed down by tiny batches).
        dropout: dropout after the hidden layer.
        evidence: ``exp``, ``softplus`` or ``relu`` (EDL losses).
        form: EDL data term, ``log``, ``digamma`` or ``mse``.
        anneal_epochs: epochs over which the KL weight rises from 0 to 1 (``edl``).
        holdout: share of each class's clips held out to choose the threshold.
        keep: known clips kept by a threshold chosen without unknown clips.
        seed: seeds the split, the initialization and the batch order.
    """

    loss: str = "edl"
    kind: str = "cosine"
    scale: float = 10.0
    hidden: int = 256
    epochs: int = 60
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 0
    dropout: float = 0.1
    evidence: str = "exp"
    form: str = "log"
    anneal_epochs: int = 10
    holdout: float = 0.2
    keep: float = DEFAULT_KEEP
    seed: int = 0

    def __post_init__(self) -> None:
        from vidsearch.models.evidential import EDL_FORMS, EVIDENCE_FUNCTIONS, HEAD_KINDS

        if self.kind not in HEAD_KINDS:
            raise InputError(f"must be one of {', '.join(HEAD_KINDS)} (got {self.kind!r})", argument="head_kind")
        if not self.scale > 0:
            raise InputError(f"must be positive (got {self.scale})", argument="scale")

        if self.loss not in LOSSES:
            raise InputError(f"must be one of {', '.join(LOSSES)} (got {self.loss!r})", argument="loss")
        if self.evidence not in EVIDENCE_FUNCTIONS:
            raise InputError(
                f"must be one of {', '.join(EVIDENCE_FUNCTIONS)} (got {self.evidence!r})", argument="evidence"
            )
        if self.form not in EDL_FORMS:
            raise InputError(f"must be one of {', '.join(EDL_FORMS)} (got {self.form!r})", argument="edl_form")
        for name, value, low in (("epochs", self.epochs, 1), ("batch_size", self.batch_size, 0)):
            if value < low:
                raise InputError(f"must be at least {low} (got {value})", argument=name)
        if self.hidden < 0:
            raise InputError(f"must be 0 (a linear head) or more (got {self.hidden})", argument="hidden")
        if not 0.0 < self.holdout < 1.0:
            raise InputError(f"must be between 0 and 1 (got {self.holdout})", argument="holdout")
        if not self.lr > 0:
            raise InputError(f"must be positive (got {self.lr})", argument="lr")
        if not self.weight_decay >= 0:
            raise InputError(f"must not be negative (got {self.weight_decay})", argument="weight_decay")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"must be in [0, 1) (got {self.dropout})", argument="dropout")

    @property
    def score(self) -> str:
        """The known score this loss's head uses: ``evidence`` for EDL, ``msp`` for cross-entropy."""
        return "msp" if self.loss == "ce" else "evidence"


@dataclass
class TrainedHead:
    """A head with everything needed to use it: weights, classes, its space and open-set rule."""

    classes: list[str]
    space_key: str
    dim: int
    config: HeadConfig
    tensors: dict[str, np.ndarray]  # layer{i}.weight / layer{i}.bias, and prototypes [K, dim]
    rule: OpenSetRule
    calibration: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def _net(self) -> Any:
        import torch

        from vidsearch.models.evidential import HeadNet

        c = self.config
        net = HeadNet(self.dim, len(self.classes), c.hidden, c.dropout, kind=c.kind, scale=c.scale)
        linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
        for i, lin in enumerate(linears):
            lin.weight.data = torch.from_numpy(np.ascontiguousarray(self.tensors[f"layer{i}.weight"]))
            if lin.bias is not None:  # a cosine head's prototype layer has none
                lin.bias.data = torch.from_numpy(np.ascontiguousarray(self.tensors[f"layer{i}.bias"]))
        return net.eval()

    def logits(self, xb: np.ndarray) -> np.ndarray:
        """Head outputs ``[N, K]`` of embeddings ``[N, dim]``."""
        import torch

        if len(xb) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        with torch.no_grad():
            out = self._net()(torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)))
        return np.asarray(out.numpy(), np.float32)

    def predict(self, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(logits, probs, known)``: class probabilities ``[N, K]`` and known scores ``[N]``.

        EDL heads: probabilities ``alpha / S``, known score ``1 - K / S``. Cross-entropy heads:
        softmax probabilities, known score their maximum.
        """
        z = self.logits(xb)
        probs, known = head_scores(z, self.config)
        return z, probs, known

    def meta(self) -> dict[str, Any]:
        """The JSON metadata stored in the head file."""
        return {
            "format": FORMAT_VERSION,
            "space_key": self.space_key,
            "dim": self.dim,
            "classes": list(self.classes),
            "config": asdict(self.config),
            "rule": self.rule.to_dict(),
            "calibration": self.calibration,
            "training": self.training,
        }


def head_scores(logits: np.ndarray, config: HeadConfig) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``[N, K]`` and known scores ``[N]`` of head outputs (see :meth:`TrainedHead.predict`)."""
    z = np.asarray(logits, np.float64)
    if config.loss == "ce":
        p = softmax(z, axis=1)
        return p.astype(np.float32), p.max(axis=1)
    import torch

    from vidsearch.models.evidential import dirichlet_uncertainty, evidence

    alpha = evidence(torch.from_numpy(z), config.evidence) + 1.0
    probs = (alpha / alpha.sum(dim=1, keepdim=True)).numpy()
    return probs.astype(np.float32), 1.0 - dirichlet_uncertainty(alpha).numpy()


def check_class_counts(labels: np.ndarray, classes: Sequence[str], source: str = "the annotations") -> None:
    """Every class needs two clips or more (one to train on, one held out to choose the threshold).

    Raises:
        InputError: naming the first class without clips, or with only one.
    """
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(classes))
    for c, n in enumerate(counts):
        if n == 0:
            raise InputError(
                f"{source}: class {classes[c]!r} has no clips; annotate at least 2, or remove it from the label set"
            )
        if n == 1:
            raise InputError(
                f"{source}: class {classes[c]!r} has only one clip; a head needs at least 2 per class "
                "(one to train on, one held out to choose the unknown threshold)"
            )


def _split(labels: np.ndarray, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out indices: per class ``round(holdout * n)`` clips, at least 1, at most n - 1."""
    train, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(1, int(round(holdout * len(idx)))), len(idx) - 1)
        held.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _fit(xb: np.ndarray, yb: np.ndarray, n_classes: int, config: HeadConfig) -> tuple[dict[str, np.ndarray], float]:
    """Train a HeadNet; returns its linear layers' tensors and the last epoch's mean loss."""
    import torch
    from torch.nn import functional as F

    from vidsearch.models.evidential import HeadNet, annealing, edl_loss

    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    net = HeadNet(xb.shape[1], n_classes, config.hidden, config.dropout, kind=config.kind, scale=config.scale)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32))
    y = torch.from_numpy(np.asarray(yb, np.int64))
    batch_size = config.batch_size or min(512, max(32, len(x) // 40))
    last = float("nan")
    net.train()
    for epoch in range(config.epochs):
        total, order = 0.0, torch.randperm(len(x), generator=gen)
        kl_weight = annealing(epoch, config.anneal_epochs) if config.loss == "edl" else 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            out = net(x[batch])
            if config.loss == "ce":
                loss = F.cross_entropy(out, y[batch])
            else:
                loss = edl_loss(out, y[batch], kl_weight=kl_weight, form=config.form, evidence_fn=config.evidence)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        last = total / len(x)
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    tensors = {}
    for i, lin in enumerate(linears):
        tensors[f"layer{i}.weight"] = lin.weight.detach().numpy().copy()
        if lin.bias is not None:
            tensors[f"layer{i}.bias"] = lin.bias.detach().numpy().copy()
    return tensors, last


def _prototypes(xb: np.ndarray, yb: np.ndarray, n_classes: int) -> np.ndarray:
    means = np.stack([xb[yb == c].mean(axis=0) for c in range(n_classes)]).astype(np.float32)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return means / np.where(norms > 0, norms, 1.0)


def train_head(
    xb: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    space_key: str,
    config: HeadConfig | None = None,
    unknown: np.ndarray | None = None,
) -> TrainedHead:
    """Train a head on embeddings of labelled clips and choose its open-set threshold.

    Args:
        xb: whole-video embeddings ``[N, dim]`` of the known clips (L2-normalized, as stored).
        labels: class index of each clip.
        classes: the class names.
        space_key: the embedding space the vectors come from.
        config: training settings (None: the defaults, an EDL head).
        unknown: embeddings of clips of no known class, used only to choose the threshold.

    Raises:
        InputError: a class with fewer than 2 clips, or mismatched shapes.
    """
    config = config or HeadConfig()
    x = np.asarray(xb, np.float32)
    y = np.asarray(labels, np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise InputError(f"expected one embedding per labelled clip, got {x.shape} for {len(y)} labels")
    check_class_counts(y, classes)
    t0, cpu0 = time.perf_counter(), time.process_time()
    train_idx, held_idx = _split(y, config.holdout, np.random.default_rng(config.seed))
    tensors, last_loss = _fit(x[train_idx], y[train_idx], len(classes), config)
    train_seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    tensors["prototypes"] = _prototypes(x, y, len(classes))
    head = TrainedHead(
        list(classes), space_key, x.shape[1], config, tensors, OpenSetRule(config.score, 1.0, 0.0)
    )  # the threshold is chosen next, on the held-out clips
    _, probs, known = head.predict(x[held_idx])
    unknown_known = head.predict(unknown)[2] if unknown is not None and len(unknown) else None
    th = choose_threshold(known, unknown_known, config.keep)
    head.rule = OpenSetRule(config.score, 1.0, th.value)
    head.calibration = {
        "score": config.score,
        "threshold": th.value,
        "threshold_method": th.method,
        "keep": config.keep if th.method == "known-quantile" else None,
        "known_videos": int(len(held_idx)),
        "unknown_videos": int(len(unknown_known)) if unknown_known is not None else 0,
        "tpr": th.tpr,
        "fpr": th.fpr,
        "auroc": auroc(known, unknown_known) if unknown_known is not None else None,
        "heldout_top1": 100.0 * float(np.mean(probs.argmax(axis=1) == y[held_idx])),
    }
    head.training = {
        "clips": int(len(train_idx)),
        "heldout": int(len(held_idx)),
        "final_loss": last_loss,
        "seconds": round(train_seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
    }
    LOG.info(
        "trained a %s head on %d clips of %d classes in %.1f s (held-out top-1 %.1f%%)",
        config.loss, len(train_idx), len(classes), train_seconds, head.calibration["heldout_top1"],
    )  # fmt: skip
    return head


def save_head(head: TrainedHead, path: str | Path) -> Path:
    """Write a head as safetensors with its JSON metadata, atomically."""
    from safetensors.numpy import save

    blob = save(
        {k: np.ascontiguousarray(v, np.float32) for k, v in head.tensors.items()},
        metadata={_META_KEY: json.dumps(head.meta())},
    )
    return atomic_write(path, lambda fh: fh.write(blob))


def load_head(path: str | Path) -> TrainedHead:
    """Read a head written by :func:`save_head`.

    Raises:
        InputError: no such file, not a safetensors file, or not a vidsearch head.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"head {p}: no such file; train one with `vidsearch enrich train-head`")
    try:
        with safe_open(str(p), framework="numpy") as f:
            meta_text = (f.metadata() or {}).get(_META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(
            f"head {p} is not a safetensors file ({exc}); train one with `vidsearch enrich train-head`"
        ) from None
    if meta_text is None:
        raise InputError(f"head {p} is a safetensors file but not a vidsearch head (no {_META_KEY!r} metadata)")
    try:
        meta = json.loads(meta_text)
        if meta.get("format") != FORMAT_VERSION:
            raise InputError(
                f"head {p} has format {meta.get('format')!r}; this vidsearch reads format {FORMAT_VERSION}"
            )
        rule = meta["rule"]
        return TrainedHead(
            classes=list(meta["classes"]),
            space_key=str(meta["space_key"]),
            dim=int(meta["dim"]),
            # heads written before output kinds existed are dense
            config=HeadConfig(**{"kind": "dense", **meta["config"]}),
            tensors=tensors,
            rule=OpenSetRule(rule["kind"], float(rule["temperature"]), float(rule["threshold"])),
            calibration=meta.get("calibration") or {},
            training=meta.get("training") or {},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"head {p} has unreadable metadata ({exc}); train it again") from None


def check_space(head: TrainedHead, space_key: str, path: str | Path = "the head") -> None:
    """Refuse a head on a space other than the one it was trained on.

    Raises:
        InputError: one line naming both spaces.
    """
    if head.space_key != space_key:
        raise InputError(
            f"{path} was trained on embeddings of space {head.space_key}, not {space_key}",
            path=path,
            hint=f"pick that space's model, or train a head for {space_key}",
            remedy="head_space",
            value=space_key,
        )
