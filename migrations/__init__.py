"""Alembic environment and revisions of the library database schema."""
