"""Fine-tuning and training ViCLIP on captioned videos (see ``docs/finetune.md``).

Modules: :mod:`~vidsearch.train.synthetic` (a seeded captioned-video generator) and
:mod:`~vidsearch.train.domains` (its settings: per-clip domain randomisation and held-out
presets), :mod:`~vidsearch.train.data` (annotations, frame cache, sampling, augmentation),
:mod:`~vidsearch.train.optim` (loss, schedule, optimizer groups), :mod:`~vidsearch.train.loop`
(the trainer: validation, best-checkpoint selection, early stopping, checkpoints),
:mod:`~vidsearch.train.lrfind` (the learning-rate range test) and :mod:`~vidsearch.train.run`
(one job end to end, behind ``vidsearch finetune``).
"""
