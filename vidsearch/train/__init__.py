"""Fine-tuning and training ViCLIP on captioned videos (see ``docs/finetune.md``).

Modules: :mod:`~vidsearch.train.synthetic` (a seeded captioned-video generator),
:mod:`~vidsearch.train.data` (annotations, frame cache, sampling, augmentation) and
:mod:`~vidsearch.train.loop` (loss, optimizer, schedule, checkpoints, validation).
"""
