"""The library on disk: SQLite metadata and embeddings (source of truth) and FAISS indexes.

The only package that speaks SQL (SQLAlchemy) or writes vector index files. One module per job:

- ``library``: open/migrate a library directory, sessions, locks, keeping FAISS files in sync;
- ``schema``: the SQLAlchemy models; ``migrations/`` (Alembic) evolves them;
- ``spaces``, ``videos``, ``segments``, ``embeddings``, ``labels``: typed functions over one
  table (group) each, taking a session so callers can combine them in one transaction;
- ``codec`` (vector <-> blob), ``chunks`` (long ``IN`` lists), ``locks`` (advisory file locks);
- ``vectors/``: the FAISS index of a space (policy, tuning, GPU, tombstones, file format).
"""
