"""The library on disk: SQLite metadata and embeddings (source of truth) and FAISS indexes."""
