"""Benchmarks reported the way video-text papers report them (``vidsearch bench``).

Modules, in pipeline order:

* :mod:`~vidsearch.bench.datasets`: annotation readers (MSR-VTT CSV/JSON, VATEX, MSVD, DiDeMo,
  ActivityNet, generic caption lists) into a :class:`~vidsearch.bench.datasets.RetrievalSet`,
  and resolving video names to files.
* :mod:`~vidsearch.bench.prompts`: shipped label sets and prompt-ensembled label embeddings
  (also used by the recognition enrichment pass).
* :mod:`~vidsearch.bench.common`: the embedding cache (a bench library filled by the indexer),
  options and run metadata shared by the runners.
* :mod:`~vidsearch.bench.retrieval` / :mod:`~vidsearch.bench.recognition`: the runners.

The metrics themselves live in :mod:`vidsearch.metrics`. Nothing is imported here, so that
importing one module does not pull in torch through another.
"""
