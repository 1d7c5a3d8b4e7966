"""Evidential deep learning (EDL) for a classifier head: Dirichlet evidence, the loss and its uncertainty.

Sensoy, Kaplan and Kandemir, "Evidential Deep Learning to Quantify Classification Uncertainty"
(NeurIPS 2018), as the InternVideo open-set recipe uses it (via DEAR, Bao et al., 2021):

* the head's outputs become non-negative *evidence* ``e = g(logits)`` (``relu``, ``softplus``
  or ``exp`` of the logits clamped to +-10, the guide's choice) and the Dirichlet parameters
  ``alpha = e + 1``; ``S = sum(alpha)``, expected probabilities ``p = alpha / S``;
* the uncertainty (the open-set "unknown" score) is ``u = K / S`` in ``(0, 1]``: 1 when there is
  no evidence at all;
* the data term is one of the paper's three (Eq. 3-5): ``log`` (the Dirichlet-marginal
  likelihood, type II ML), ``digamma`` (Bayes risk of cross-entropy) or ``mse`` (Bayes risk of
  the squared error);
* the regulariser is ``KL[Dir(alpha~) || Dir(1)]`` with ``alpha~ = y + (1 - y) * alpha`` (the
  evidence of the wrong classes only), weighted by the annealing coefficient
  ``min(1, epoch / anneal_epochs)`` so that it does not flatten the evidence before the head
  has learnt anything. The guide's ``edl_nokl`` recipe leaves it out.

Torch only; the head itself is :class:`HeadNet` (linear or a 2-layer MLP, a dense or a cosine output layer).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "EVIDENCE_FUNCTIONS",
    "EDL_FORMS",
    "HEAD_KINDS",
    "HeadNet",
    "evidence",
    "dirichlet_uncertainty",
    "kl_to_uniform",
    "edl_loss",
    "annealing",
]

EVIDENCE_FUNCTIONS: tuple[str, ...] = ("exp", "softplus", "relu")
EDL_FORMS: tuple[str, ...] = ("log", "digamma", "mse")
_EXP_CLAMP = 10.0  # exp evidence of a logit above 10 (e^10 ~ 22,000) only risks overflow


HEAD_KINDS: tuple[str, ...] = ("cosine", "dense")


class HeadNet(nn.Module):
    """A classifier on frozen, L2-normalized embeddings: linear (``hidden=0``) or one hidden layer.

    The input is scaled by ``sqrt(dim)`` first: a unit vector's entries are about ``1/sqrt(dim)``,
    which would make the first layer's useful weights ``sqrt(dim)`` times its initial scale.

    ``kind`` picks the output layer:

    * ``dense``: an affine layer, logits ``W h + b``. Its logits grow with ``|W h|``, so an input
      far from every training clip can get *more* evidence than the clips themselves;
    * ``cosine``: a prototype layer, logits ``s * cos(h, w_c)`` with unit class weights ``w_c``
      and a fixed scale ``s`` (no bias). The evidence is bounded, highest at a class's
      prototype and lowest for inputs orthogonal to every prototype, which is the geometry an
      open-set score needs (cosine classifiers: Gidaris & Komodakis 2018; normalized softmax:
      Wang et al. 2018). The scale is fixed, not learnt: the evidential loss always asks for more
      evidence, and a learnt scale would grow until far-away inputs got much evidence again.
    """

    def __init__(
        self, dim: int, classes: int, hidden: int = 0, dropout: float = 0.0, kind: str = "dense", scale: float = 10.0
    ) -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {kind!r}; choose one of {', '.join(HEAD_KINDS)}")
        self.kind = kind
        self.input_scale = math.sqrt(dim)
        self.logit_scale = scale
        cosine = kind == "cosine"
        self.layers = (
            nn.Sequential(
                nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes, bias=not cosine)
            )
            if hidden > 0
            else nn.Sequential(nn.Linear(dim, classes, bias=not cosine))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, K]`` of embeddings ``[N, dim]``."""
        h = x * self.input_scale
        if self.kind == "dense":
            out: torch.Tensor = self.layers(h)
            return out
        last = self.layers[-1]
        assert isinstance(last, nn.Linear)
        h = self.layers[:-1](h)
        return self.logit_scale * F.normalize(h, dim=-1) @ F.normalize(last.weight, dim=-1).T


def evidence(logits: torch.Tensor, kind: str = "exp") -> torch.Tensor:
    """Non-negative evidence of logits (``exp`` is clamped to +-10 first)."""
    if kind == "exp":
        return torch.exp(torch.clamp(logits, -_EXP_CLAMP, _EXP_CLAMP))
    if kind == "softplus":
        return F.softplus(logits)
    if kind == "relu":
        return F.relu(logits)
    raise ValueError(f"unknown evidence function {kind!r}; choose one of {', '.join(EVIDENCE_FUNCTIONS)}")


def dirichlet_uncertainty(alpha: torch.Tensor) -> torch.Tensor:
    """``u = K / S`` of Dirichlet parameters ``[N, K]``: 1 without evidence, towards 0 with much."""
    return alpha.shape[-1] / alpha.sum(dim=-1)


def kl_to_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """``KL[Dir(alpha) || Dir(1, ..., 1)]`` per row of ``alpha`` ``[N, K]``."""
    k = alpha.shape[-1]
    s = alpha.sum(dim=-1, keepdim=True)
    log_norm = torch.lgamma(s.squeeze(-1)) - math.lgamma(k) - torch.lgamma(alpha).sum(dim=-1)
    return log_norm + ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(s))).sum(dim=-1)


def annealing(epoch: int, anneal_epochs: int = 10) -> float:
    """The KL weight at ``epoch`` (0-based): ``min(1, epoch / anneal_epochs)`` (the paper's schedule)."""
    return min(1.0, epoch / anneal_epochs) if anneal_epochs > 0 else 1.0


def edl_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    kl_weight: float,
    form: str = "log",
    evidence_fn: str = "exp",
) -> torch.Tensor:
    """Mean evidential loss of a batch (module docstring).

    Args:
        logits: head outputs ``[N, K]``.
        targets: class indices ``[N]``.
        kl_weight: weight of the KL regulariser (0 trains without it, the ``edl_nokl`` recipe).
        form: ``log``, ``digamma`` or ``mse``.
        evidence_fn: ``exp``, ``softplus`` or ``relu``.
    """
    if form not in EDL_FORMS:
        raise ValueError(f"unknown EDL loss form {form!r}; choose one of {', '.join(EDL_FORMS)}")
    alpha = evidence(logits, evidence_fn) + 1.0
    y = F.one_hot(targets, num_classes=alpha.shape[-1]).to(alpha.dtype)
    s = alpha.sum(dim=-1, keepdim=True)
    if form == "log":
        data = (y * (torch.log(s) - torch.log(alpha))).sum(dim=-1)
    elif form == "digamma":
        data = (y * (torch.digamma(s) - torch.digamma(alpha))).sum(dim=-1)
    else:
        p = alpha / s
        data = ((y - p) ** 2 + p * (1.0 - p) / (s + 1.0)).sum(dim=-1)
    if kl_weight > 0:
        data = data + kl_weight * kl_to_uniform(y + (1.0 - y) * alpha)
    return data.mean()
