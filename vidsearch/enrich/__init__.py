"""Enrichment passes over an indexed library.

* :mod:`vidsearch.enrich.recognize`: zero-shot action labels for every stored video and window
  (incremental, from stored vectors), ``videos_with_label`` for ``query --label``, timelines.
* :mod:`vidsearch.enrich.openset`: the known score, its calibration and AUROC ("unknown").
* :mod:`vidsearch.enrich.localize`: spans ``(start, end, score)`` from window scores, cached fine
  windows, Charades-STA metrics.
* :mod:`vidsearch.enrich.evaluate`: the open-set and localization benchmarks and calibration.

Nothing is imported here, so ``import vidsearch.enrich`` stays cheap.
"""
