"""Data generators for the tests and benchmarks; no product module imports this package.

- :mod:`~vidsearch.testing.synthetic`: a seeded captioned-video generator (coloured shapes moving
  over a texture), written as real video files with an annotation JSON;
- :mod:`~vidsearch.testing.domains`: its settings (per-clip domain randomisation, held-out
  presets and caption grammars);
- :mod:`~vidsearch.testing.synthetic_actors`: several actors in one video with their boxes, for
  the spatio-temporal tests;
- :mod:`~vidsearch.testing.recipes`: the tiny ViCLIP configs and ``vidsearch finetune`` recipes
  the proofs train on these clips.

It ships in the wheel so that ``benchmarks/`` and downstream tests can make the same data.
"""
