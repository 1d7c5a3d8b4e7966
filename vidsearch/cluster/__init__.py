"""Index on a Ray cluster: the same scan, plan and commit as a local run, decode and encode on Ray.

L3: front ends over the indexer (L2) and the media/models core (L0); no SQL here.

- :mod:`~vidsearch.cluster.options`: :class:`RayOptions`, :class:`ClusterError`, the Ray import check.
- :mod:`~vidsearch.cluster.connect`: start or join a cluster, quiet Ray Data's own output.
- :mod:`~vidsearch.cluster.pathmap`: ``--path-map LOCAL=REMOTE`` for mounts that differ.
- :mod:`~vidsearch.cluster.preflight`: a task on every node checks version, model key and paths.
- :mod:`~vidsearch.cluster.actors`: the decode and encode actors that Ray Data runs.
- :mod:`~vidsearch.cluster.ray_runner`: the Ray Data pipeline as the runner's stages.
- :mod:`~vidsearch.cluster.staging`: ``--stage DIR`` Parquet shards and ``vidsearch ingest DIR``.
"""
