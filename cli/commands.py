"""Import every command module so that its commands register on the app.

Each module keeps heavy imports (torch, faiss, decord) inside its command functions, so
`vidsearch --help` stays fast.
"""

from __future__ import annotations

from vidsearch.cli import (  # noqa: F401,E402
    actors,  # noqa: F401
    alerts,  # noqa: F401
    bench,  # noqa: F401
    bench_enrich,  # noqa: F401
    clip,  # noqa: F401
    enrich,  # noqa: F401
    enrich_head,  # noqa: F401
    export,  # noqa: F401
    finetune,  # noqa: F401
    index,
    ingest,  # noqa: F401
    library,
    maintenance,  # noqa: F401
    query,
    serve,  # noqa: F401
    transcribe,  # noqa: F401
    watch,  # noqa: F401
)
