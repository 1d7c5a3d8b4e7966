"""Tiny ViCLIP configs and `vidsearch finetune` recipes for the synthetic generator's proofs.

The tests and benchmarks that train on :mod:`vidsearch.testing.synthetic` clips take their model
size and flags from here, so one place says what each proof trains (docs/finetune.md says why).
"""

from __future__ import annotations

from vidsearch.testing.domains import DIRECTION_WORDS

__all__ = [
    "TINY_CONFIG",
    "FAMILY_CONFIG",
    "TINY_RECIPE",
    "DEFAULT_SETTING_CONFIG",
    "DEFAULT_SETTING_RECIPE",
    "REVERSE_PAIRS",
    "FAMILY_RECIPE",
]

# The recommended tiny ViCLIP (docs/finetune.md): 48 px frames in 8 px patches (6 x 6 per frame, a
# 4-frame clip is 144 tokens). The smallest object of the ``family`` setting (radius 0.09 of the
# shorter side, so 8.6 px across at 48 px) spans more than a patch and always overlaps 2-4 of
# them; at 32 px it fitted inside one. ~0.9 M vision parameters, 6.3 M token embedding.
TINY_CONFIG: dict[str, int] = dict(
    input_resolution=48,
    patch_size=8,
    vision_width=96,
    vision_layers=4,
    vision_heads=4,
    embed_dim=128,
    num_frames=4,
    text_width=128,
    text_layers=2,
    text_heads=2,
)
# The tiny ViCLIP of the fine-tuning proof on the randomised ``family`` (benchmarks/finetune_synthetic.py):
# TINY_CONFIG in 6 px patches (8 x 8 per frame, 256 tokens a 4-frame clip), so the smallest
# object (8.6 px across at 48 px) covers a few patches and shape survives the patch embedding;
# FAMILY_RECIPE's masking keeps the cost of an epoch near that of 8 px patches.
FAMILY_CONFIG: dict[str, int] = {**TINY_CONFIG, "patch_size": 6}
# `vidsearch finetune` flags that train TINY_CONFIG from scratch on ~3,000 clips within 15 CPU-minutes
# on one thread (docs/finetune.md says why each): motion direction is learnt only after several
# hundred steps with many distinct captions per batch, so large batches and enough steps matter
# more than any trick; the best validation epoch is kept (--select-best is on by default) and a
# plateau of 8 epochs ends the run early (the validation curve is flat for a few epochs before
# direction is learnt, so a shorter patience can stop a run that was about to improve).
TINY_RECIPE: tuple[str, ...] = (
    "--epochs",
    "20",
    "--lr",
    "5e-4",
    "--batch-size",
    "64",
    "--warmup",
    "0.05",
    "--weight-decay",
    "0.05",
    "--temp",
    "0.07",
    "--patience",
    "8",
)

# The tiny ViCLIP and recipe of the proofs on the `default` generator alone (the enrichment and
# spatio-temporal proofs, benchmarks/enrich_synthetic.py and actors_synthetic.py, train on it):
# 32 px is enough for its objects (radius 0.10-0.14 of 64 px frames), and this recipe learns
# direction there within budget (validation t2v R@1 ~0.95 after 30 epochs, ~11 CPU-min on one
# thread), where TINY_CONFIG + TINY_RECIPE reached 0.41 in 20 epochs.
DEFAULT_SETTING_CONFIG: dict[str, int] = dict(
    input_resolution=32,
    patch_size=8,
    vision_width=128,
    vision_layers=4,
    vision_heads=4,
    embed_dim=128,
    num_frames=4,
    text_width=128,
    text_layers=2,
    text_heads=2,
)
DEFAULT_SETTING_RECIPE: tuple[str, ...] = (
    "--epochs",
    "30",
    "--lr",
    "5e-4",
    "--batch-size",
    "64",
    "--warmup",
    "0.05",
    "--weight-decay",
    "0.05",
    "--temp",
    "0.07",
)


def _reverse_pairs() -> str:
    """``--reverse-pairs`` for every direction synonym of the generator: the last word of each
    phrase, paired with the same synonym of the opposite direction (``"to the left"`` swaps by
    ``left=right``)."""
    pairs: dict[str, str] = {}
    for a, b in (("left", "right"), ("up", "down")):
        for pa, pb in zip(DIRECTION_WORDS[a], DIRECTION_WORDS[b], strict=False):
            pairs.setdefault(pa.split()[-1], pb.split()[-1])
    return ",".join(f"{a}={b}" for a, b in pairs.items())


# Time reversal for the synthetic captions of every setting and grammar:
# "left=right,leftwards=rightwards,up=down,upwards=downwards,upward=downward".
REVERSE_PAIRS: str = _reverse_pairs()

# `vidsearch finetune` flags for FAMILY_CONFIG from scratch on the randomised `family` setting (the
# proof of benchmarks/finetune_synthetic.py; docs/finetune.md says why each): time-reversed clips
# with swapped captions and the reversal hinge (opposite directions), the text neighbour hinge
# (captions of different actions, e.g. a circle and a square, must not merge while the video tower
# cannot yet tell them apart), a temporal init of std 0.3 (frames distinct enough to learn order
# early, not so large that position drowns the frame content), batches of groups of 8 similar
# actions (hard negatives by group name) and 70 % of the video tokens dropped per clip, half of the
# kept ones chosen by motion (ViCLIP's masking with the moving object kept in every frame, so
# direction is learnt within a few epochs; it also pays for the 6 px patches).
# The synthetic annotations' "group" makes paraphrases positives.
FAMILY_RECIPE: tuple[str, ...] = (
    "--epochs",
    "18",
    "--lr",
    "5e-4",
    "--batch-size",
    "32",
    "--warmup",
    "0.05",
    "--weight-decay",
    "0.05",
    "--temp",
    "0.07",
    "--patience",
    "8",
    "--reverse-pairs",
    REVERSE_PAIRS,
    "--reverse-margin",
    "0.5",
    "--temporal-init-std",
    "0.3",
    "--hard-negatives",
    "8",
    "--masking",
    "0.7",
    "--masking-motion",
    "0.5",
    "--text-margin",
    "0.6",
)
