"""Generator settings of the synthetic videos: what is drawn per clip, and from which ranges.

A :class:`GeneratorSetting` names a family of datasets: frame sizes, clip lengths, shape set,
object sizes, speeds, background kinds, pixel noise, compression and a caption grammar. The
generator (:mod:`vidsearch.testing.synthetic`) draws one value of each per clip, from a stream
seeded by ``(split seed, clip index)``, so a split is the same on every run.

Presets (:data:`SETTINGS`):

* ``default``: the original generator, one look for every clip (64 px, 4 shapes, sinusoid
  backgrounds, ``"a red circle moving left"``). The enrichment proof uses it.
* ``family``: domain randomisation for training: every parameter drawn from a wide range.
* ``wide``, ``tiny-fast``, ``big-slow``, ``paraphrase``: held-out settings, each different from
  ``family`` in several ways at once (frame size or aspect, shape set, object sizes, speeds,
  background kind, noise/compression, and a caption grammar whose templates never occur in
  ``family``). Their words (colours, shapes, directions, verbs) are ones ``family`` uses: a model
  trained from scratch cannot know a word it never read.

A :class:`Grammar` turns an action into a caption: a template with word-order slots and
synonyms for each shape, verb and direction, drawn per clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Grammar",
    "GeneratorSetting",
    "Look",
    "CANONICAL",
    "TRAIN_GRAMMAR",
    "HELDOUT_GRAMMAR",
    "SETTINGS",
    "HELDOUT_SETTINGS",
    "get_setting",
]

# Synonyms shared by both grammars (a held-out grammar may reorder words, not invent them).
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "ball"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "cross": ("cross", "plus sign"),
    "diamond": ("diamond", "rhombus"),
    "star": ("star",),
}
DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left", "to the left", "leftwards"),
    "right": ("right", "to the right", "rightwards"),
    "up": ("up", "upwards", "upward"),
    "down": ("down", "downwards", "downward"),
}
VERBS: tuple[str, ...] = ("moving", "going", "sliding", "travelling", "heading")


@dataclass(frozen=True)
class Grammar:
    """Caption templates (slots ``{c}`` colour, ``{s}`` shape, ``{v}`` verb, ``{d}`` direction) and synonyms."""

    templates: tuple[str, ...]
    synonyms: bool = True  # draw shape/verb/direction synonyms; False: the first word of each

    def caption(self, colour: str, shape: str, direction: str, rng: np.random.Generator | None) -> str:
        """The caption of an action; ``rng=None`` (or one template, no synonyms) gives the first choice."""

        def pick(options: tuple[str, ...]) -> str:
            if rng is None or not self.synonyms or len(options) == 1:
                return options[0]
            return options[int(rng.integers(len(options)))]

        template = (
            self.templates[0]
            if rng is None or len(self.templates) == 1
            else self.templates[int(rng.integers(len(self.templates)))]
        )
        return template.format(c=colour, s=pick(SHAPE_WORDS[shape]), v=pick(VERBS), d=pick(DIRECTION_WORDS[direction]))


CANONICAL = Grammar(("a {c} {s} moving {d}",), synonyms=False)
TRAIN_GRAMMAR = Grammar(
    (
        "a {c} {s} {v} {d}",
        "the {c} {s} is {v} {d}",
        "{c} {s} {v} {d}",
        "a {s} in {c} {v} {d}",
        "{v} {d}: a {c} {s}",
        "a {c} {s} that is {v} {d}",
    )
)
# Other word orders and function words: none of these templates is in TRAIN_GRAMMAR.
HELDOUT_GRAMMAR = Grammar(
    (
        "{s}, {c}, {v} {d}",
        "{v} {d} is the {c} {s}",
        "one {c} {s} which is {v} {d}",
        "a {c} coloured {s} {v} {d}",
    )
)


@dataclass(frozen=True)
class Look:
    """The drawn appearance of one clip (everything but colour, shape and direction)."""

    width: int
    height: int
    num_frames: int
    background: str
    radius: tuple[float, float]  # object radius range, share of the shorter frame side
    travel: tuple[float, float]  # share of the free path covered during the clip (speed)
    noise: float  # std of per-frame Gaussian pixel noise (0-255 scale)
    colour_jitter: float  # std of the per-clip colour offset
    crf: int  # libx264 constant rate factor (18: near lossless; 35+: visible blocks)


@dataclass(frozen=True)
class GeneratorSetting:
    """A family of synthetic datasets; each field is a set or range drawn from per clip."""

    name: str
    sizes: tuple[tuple[int, int], ...] = ((64, 64),)  # (width, height) choices; even numbers
    frames: tuple[int, int] = (16, 16)  # clip length range in frames (inclusive)
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "white")
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "cross")
    radius: tuple[float, float] = (0.10, 0.14)
    travel: tuple[float, float] = (0.75, 1.0)
    backgrounds: tuple[str, ...] = ("grating",)
    noise: tuple[float, float] = (0.0, 0.0)
    colour_jitter: float = 8.0
    crf: tuple[int, int] = (18, 18)
    grammar: Grammar = CANONICAL
    description: str = ""

    def draw(self, rng: np.random.Generator) -> Look:
        """One clip's look, drawn from this setting's ranges."""
        w, h = self.sizes[int(rng.integers(len(self.sizes)))]
        return Look(
            width=w, height=h,
            num_frames=int(rng.integers(self.frames[0], self.frames[1] + 1)),
            background=self.backgrounds[int(rng.integers(len(self.backgrounds)))],
            radius=self.radius, travel=self.travel,
            noise=float(rng.uniform(*self.noise)) if self.noise[1] > 0 else 0.0,
            colour_jitter=self.colour_jitter,
            crf=int(rng.integers(self.crf[0], self.crf[1] + 1)),
        )  # fmt: skip


ALL_SHAPES = tuple(SHAPE_WORDS)

SETTINGS: dict[str, GeneratorSetting] = {
    s.name: s
    for s in (
        GeneratorSetting("default", description="the original generator: 64 px, 4 shapes, gratings, one caption form"),
        GeneratorSetting(
            "family",
            sizes=((48, 48), (64, 64), (80, 80), (96, 96), (64, 48), (48, 64), (96, 64)),
            frames=(12, 24),
            shapes=ALL_SHAPES,
            radius=(0.09, 0.17),
            travel=(0.35, 1.0),
            backgrounds=("grating", "blobs", "flat", "gradient"),
            noise=(0.0, 8.0),
            colour_jitter=14.0,
            crf=(18, 30),
            grammar=TRAIN_GRAMMAR,
            description="training: sizes 48-96 px (some not square), 12-24 frames, 6 shapes, radius 0.09-0.17, "
            "travel 0.35-1.0, 4 background kinds, noise 0-8, crf 18-30, 6 caption templates with synonyms",
        ),
        GeneratorSetting(
            "wide",
            sizes=((112, 64),),
            frames=(16, 16),
            shapes=("circle", "square", "diamond", "star"),
            radius=(0.12, 0.16),
            travel=(0.6, 0.9),
            backgrounds=("checker",),
            noise=(2.0, 4.0),
            crf=(24, 24),
            grammar=HELDOUT_GRAMMAR,
            description="112x64 frames (unseen size and aspect), shapes circle/square/diamond/star, "
            "checkerboard backgrounds (unseen kind), held-out caption templates",
        ),
        GeneratorSetting(
            "tiny-fast",
            sizes=((40, 40),),
            frames=(10, 10),
            shapes=("triangle", "cross", "diamond", "star"),
            radius=(0.09, 0.11),
            travel=(0.9, 1.0),
            backgrounds=("blobs", "checker"),
            noise=(6.0, 10.0),
            crf=(32, 34),
            grammar=HELDOUT_GRAMMAR,
            description="40 px frames (below the training sizes), 10 frames, the smallest objects, fastest moves, "
            "shapes triangle/cross/diamond/star, heavy noise and compression, held-out templates",
        ),
        GeneratorSetting(
            "big-slow",
            sizes=((128, 128),),
            frames=(28, 28),
            shapes=("circle", "triangle", "square", "star"),
            radius=(0.15, 0.19),
            travel=(0.35, 0.45),
            backgrounds=("gradient", "checker"),
            noise=(0.0, 2.0),
            crf=(20, 20),
            grammar=HELDOUT_GRAMMAR,
            description="128 px frames (above the training sizes), 28 frames, objects above the training sizes, "
            "the slowest moves, gradient/checker backgrounds, held-out templates",
        ),
        GeneratorSetting(
            "paraphrase",
            sizes=((72, 72),),
            frames=(16, 16),
            shapes=("circle", "square", "triangle", "cross"),
            radius=(0.1, 0.14),
            travel=(0.5, 0.8),
            backgrounds=("grating", "flat"),
            noise=(0.0, 4.0),
            crf=(18, 26),
            grammar=HELDOUT_GRAMMAR,
            description="72 px frames, the default shapes, held-out caption templates (word order, function words)",
        ),
    )
}
HELDOUT_SETTINGS: tuple[str, ...] = ("wide", "tiny-fast", "big-slow", "paraphrase")


def get_setting(name: str) -> GeneratorSetting:
    """The preset called ``name``.

    Raises:
        ValueError: no such preset (the message lists them).
    """
    try:
        return SETTINGS[name]
    except KeyError:
        raise ValueError(f"unknown generator setting {name!r}; choose one of {', '.join(SETTINGS)}") from None
