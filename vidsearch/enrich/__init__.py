"""Enrichment passes over an indexed library.

* :mod:`vidsearch.enrich.recognize`: zero-shot action labels for every stored video and window
  (incremental, from stored vectors), ``videos_with_label`` for ``query --label``, timelines.
* :mod:`vidsearch.enrich.openset`: calibration of the open-set rule (temperature, threshold);
  the rule itself is :mod:`vidsearch.labels`.
* :mod:`vidsearch.enrich.head`: a trained classifier head (evidential or cross-entropy) on stored
  embeddings, its open-set rule and file; :mod:`vidsearch.enrich.head_library` labels a library
  with one.
* :mod:`vidsearch.enrich.localize`: where a text happens in one video, from its fine windows;
  :mod:`vidsearch.enrich.windows` plans, decodes and embeds those windows and
  :mod:`vidsearch.enrich.window_cache` keeps their embeddings. The span algorithm is
  :mod:`vidsearch.spans`.

The benchmarks of these passes are :mod:`vidsearch.bench.openset` and
:mod:`vidsearch.bench.localization`. Nothing is imported here, so ``import vidsearch.enrich``
stays cheap.
"""
