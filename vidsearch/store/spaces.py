"""Embedding spaces: one row per model (name + checkpoint hash) and its frame sampling."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vidsearch.store.schema import Space

__all__ = [
    "SpaceInfo",
    "list_spaces",
    "find_space",
    "add_space",
    "generation",
    "space_dim",
    "bump_generation",
    "space_uid",
]


@dataclass(frozen=True)
class SpaceInfo:
    """A detached view of a :class:`~vidsearch.store.schema.Space` row."""

    id: int
    key: str
    dim: int
    model_spec: dict[str, Any]
    sampling: dict[str, Any]
    generation: int
    # Names this space of this library (see :func:`space_uid`); index files record it.
    uid: str = ""


def space_uid(space_id: int, key: str, created_at: Any) -> str:
    """An id of one space of one library: its row id, key and creation time (to the microsecond).

    Another library's space of the same model and row id was created at another instant, so an
    index file copied from it is told apart; a backup of this library keeps the id.
    """
    if isinstance(created_at, datetime):  # SQLite gives back naive UTC; a new row holds an aware time
        if created_at.tzinfo is not None:
            created_at = created_at.astimezone(timezone.utc).replace(tzinfo=None)
        created_at = created_at.isoformat()
    return hashlib.blake2b(f"{space_id}|{key}|{created_at}".encode(), digest_size=12).hexdigest()


def _info(row: Space) -> SpaceInfo:
    return SpaceInfo(
        id=row.id,
        key=row.key,
        dim=row.dim,
        model_spec=json.loads(row.model_spec),
        sampling=json.loads(row.sampling),
        generation=row.generation,
        uid=space_uid(row.id, row.key, row.created_at),
    )


def list_spaces(s: Session) -> list[SpaceInfo]:
    """All spaces, most recently updated first."""
    rows = s.scalars(select(Space).order_by(Space.updated_at.desc(), Space.id.desc())).all()
    return [_info(r) for r in rows]


def find_space(s: Session, key: str) -> SpaceInfo | None:
    """The space with exactly ``key``, if any."""
    row = s.scalar(select(Space).where(Space.key == key))
    return _info(row) if row else None


def add_space(s: Session, key: str, dim: int, model_spec: dict[str, Any], sampling: dict[str, Any]) -> SpaceInfo:
    """Insert a new space at generation 0."""
    row = Space(key=key, dim=dim, model_spec=json.dumps(model_spec), sampling=json.dumps(sampling), generation=0)
    s.add(row)
    s.flush()
    return _info(row)


def generation(s: Session, space_id: int) -> int:
    """The space's current generation (0 for an unknown space)."""
    return int(s.scalar(select(Space.generation).where(Space.id == space_id)) or 0)


def space_dim(s: Session, space_id: int) -> int:
    """The vector dimension of a space."""
    return int(s.scalar(select(Space.dim).where(Space.id == space_id)))


def bump_generation(s: Session, space_ids: Iterable[int]) -> None:
    """Mark that this transaction changed the vectors of these spaces.

    Every transaction that adds or removes a space's vectors calls this; a FAISS file records
    the generation it reflects, so a stale file is found without comparing id sets.
    """
    ids = sorted({int(i) for i in space_ids})
    if ids:
        s.execute(update(Space).where(Space.id.in_(ids)).values(generation=Space.generation + 1))
