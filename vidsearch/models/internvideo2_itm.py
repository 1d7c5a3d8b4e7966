"""ITM re-ranking of contrastive candidates, as the official InternVideo2 retrieval evaluation does it.

For each row of an ITC similarity matrix (a video against all captions, or a caption against
all videos) the ``k`` best columns are run through the BERT fusion layers against the video's
tokens and scored by ``itm_head(...)[:, 1]``; every other entry is -100
(``tasks/retrieval_utils.evaluation``). :func:`retrieval_matrices` returns the evaluation's
three score kinds per direction: ``sim`` (ITC), ``dsl`` (dual softmax on ITC) and ``match``
(ITM re-ranked), each softmaxed over its rows as the official function returns them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vidsearch.models.internvideo2 import InternVideo2

__all__ = ["NOT_RERANKED", "itm_match_scores", "rerank_rows", "retrieval_matrices"]

# the official evaluation's value for pairs outside a row's top k
NOT_RERANKED = -100.0


def itm_match_scores(
    model: InternVideo2,
    text_states: torch.Tensor,
    text_mask: torch.Tensor,
    vision_tokens: torch.Tensor,
    batch: int = 32,
) -> torch.Tensor:
    """The match logit (``itm_head`` column 1) of row-aligned pairs, in batches; float32 ``[K]``.

    Args:
        text_states: text-layer states ``[K, L, hidden]`` (or ``[1, L, hidden]``, broadcast).
        text_mask: their masks ``[K, L]`` (or ``[1, L]``).
        vision_tokens: vision tokens ``[K, N, width]`` (or ``[1, N, width]``).
        batch: pairs per fusion call.
    """
    k = max(len(text_states), len(vision_tokens))
    out = []
    for i in range(0, k, batch):
        j = min(i + batch, k)

        def rows(x: torch.Tensor, i: int = i, j: int = j) -> torch.Tensor:
            return x.expand(j - i, *x.shape[1:]) if len(x) == 1 else x[i:j]

        logits = model.itm_logits(rows(text_states), rows(text_mask), rows(vision_tokens))
        out.append(logits[:, 1].float())
    return torch.cat(out)


def rerank_rows(itc: torch.Tensor, k: int, score: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """ITM scores for each row's ``k`` best ITC columns, :data:`NOT_RERANKED` elsewhere.

    Args:
        itc: similarities ``[R, C]``.
        k: candidates per row (capped at ``C``).
        score: ``(row, column indices) -> scores`` of those pairs.
    """
    k = min(k, itc.shape[1])
    out = torch.full(itc.shape, NOT_RERANKED, dtype=torch.float32)
    for r in range(itc.shape[0]):
        idx = itc[r].topk(k).indices
        out[r, idx] = score(r, idx).float().cpu()
    return out


def retrieval_matrices(
    model: InternVideo2,
    vision_tokens: torch.Tensor,
    vision_feat: torch.Tensor,
    text_states: torch.Tensor,
    text_mask: torch.Tensor,
    text_feat: torch.Tensor,
    k_test: int = 128,
) -> dict[str, torch.Tensor]:
    """The official ``evaluation()`` outputs for one clip per video: ``{i2t,t2i}_{sim,dsl,match}``.

    Args:
        vision_tokens: ``[V, N, width]`` tokens of each video.
        vision_feat: ``[V, D]`` ITC video features (normalized here).
        text_states: ``[T, L, hidden]`` text-layer states of each caption.
        text_mask: ``[T, L]`` their masks.
        text_feat: ``[T, D]`` ITC text features (normalized here).
        k_test: ITC candidates re-ranked by ITM per row.

    Returns:
        ``i2t_*`` ``[V, T]`` and ``t2i_*`` ``[T, V]``, each softmaxed over dim 1.
    """
    v = torch.nn.functional.normalize(vision_feat.float(), dim=-1)
    t = torch.nn.functional.normalize(text_feat.float(), dim=-1)
    i2t = (v @ t.T).cpu()
    t2i = i2t.T.contiguous()
    i2t_match = rerank_rows(
        i2t, k_test, lambda r, idx: itm_match_scores(model, text_states[idx], text_mask[idx], vision_tokens[r : r + 1])
    )
    t2i_match = rerank_rows(
        t2i,
        k_test,
        lambda r, idx: itm_match_scores(model, text_states[r : r + 1], text_mask[r : r + 1], vision_tokens[idx]),
    )
    return {
        "i2t_sim": i2t.softmax(1),
        "t2i_sim": t2i.softmax(1),
        # dual softmax: each score weighted by its softmax over the other side (dim 0)
        "i2t_dsl": (i2t * i2t.softmax(0)).softmax(1),
        "t2i_dsl": (t2i * t2i.softmax(0)).softmax(1),
        "i2t_match": i2t_match.softmax(1),
        "t2i_match": t2i_match.softmax(1),
    }
