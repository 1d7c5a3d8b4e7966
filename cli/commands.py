"""Import every command module so that its commands register on the app.

Each module keeps heavy imports (torch, faiss, decord) inside its command functions, so
`vidsearch --help` stays fast.
"""

from __future__ import annotations

from vidsearch.cli import index, library, query  # noqa: F401,E402
from vidsearch.cli import bench  # noqa: F401
from vidsearch.cli import enrich  # noqa: F401
from vidsearch.cli import bench_enrich  # noqa: F401
from vidsearch.cli import finetune  # noqa: F401
from vidsearch.cli import ingest  # noqa: F401
from vidsearch.cli import serve  # noqa: F401
from vidsearch.cli import actors  # noqa: F401
from vidsearch.cli import maintenance  # noqa: F401
from vidsearch.cli import export  # noqa: F401
