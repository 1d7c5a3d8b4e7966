"""Fine-tuning and training ViCLIP on captioned videos (see ``docs/finetune.md``).

Modules: :mod:`~vidsearch.train.data` (annotations, frame cache, sampling, augmentation),
:mod:`~vidsearch.train.optim` (loss, schedule, optimizer groups), :mod:`~vidsearch.train.loop`
(the trainer: validation, best-checkpoint selection, early stopping, checkpoints),
:mod:`~vidsearch.train.lrfind` (the learning-rate range test) and :mod:`~vidsearch.train.run`
(one job end to end, behind ``vidsearch finetune``). The synthetic captioned videos the
proofs train on are made by :mod:`vidsearch.testing`.
"""
