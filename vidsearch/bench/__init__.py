"""Benchmarks reported the way video-text papers report them (``vidsearch bench``).

Modules, in pipeline order:

* :mod:`~vidsearch.bench.datasets`: annotation readers (MSR-VTT CSV/JSON, VATEX, MSVD, DiDeMo,
  ActivityNet, generic caption lists) into a :class:`~vidsearch.bench.datasets.RetrievalSet`,
  and resolving video names to files.
* :mod:`~vidsearch.bench.common`: the embedding cache (a bench library filled by the indexer),
  options and run metadata shared by the runners.
* :mod:`~vidsearch.bench.retrieval` / :mod:`~vidsearch.bench.recognition`: the runners.
* :mod:`~vidsearch.bench.openset` / :mod:`~vidsearch.bench.localization`: the benchmarks of the
  enrichment passes (open-set recognition and its calibration of a library's label set;
  Charades-STA style temporal localization).

The metrics themselves live in :mod:`vidsearch.metrics`; label sets and prompts in
:mod:`vidsearch.labels`. Nothing is imported here, so that
importing one module does not pull in torch through another.
"""
