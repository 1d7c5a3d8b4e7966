"""The use cases (L2): what a user asks of a library, once, for every front end.

The CLI and the web server parse a request, call one function here, and present the answer:

- ``query.search`` (``vidsearch query``, the web page's search and "more like this"), over the
  retrievers of :mod:`vidsearch.retrieval`;
- ``spaces.resolve_space``: which embedding space a ``--model`` means (the one resolver);
- ``encoders``: the one place that loads a space's encoders;
- ``remove.remove_videos``, ``reindex.rebuild_indexes``, ``localize.localize``,
  ``labels.video_annotations``, and the video lookups of ``videos``.

The package imports nothing itself: a command pays only for the use case it runs.
"""
