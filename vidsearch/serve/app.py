"""The ASGI application: routes, the page, JSON errors and the guards, built by :func:`create_app`."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

from vidsearch.errors import InputError, MediaError, ModelError, VidsearchError
from vidsearch.serve.api import router as api_router
from vidsearch.serve.api import validation_message
from vidsearch.serve.clips import router as clips_router
from vidsearch.serve.library import router as library_router
from vidsearch.serve.media import router as media_router
from vidsearch.serve.scores import router as scores_router
from vidsearch.serve.security import BodyTooLarge, Guard, allowed_host_names
from vidsearch.serve.service import NotFound, ServeConfig, ServeState, UnsupportedMediaType
from vidsearch.serve.streams import router as streams_router

__all__ = ["create_app", "public_message"]

LOG = logging.getLogger(__name__)
# Absolute paths in a message (a file name a user error names) are cut to their last part, so an
# error never tells a client where the server keeps its files.
_ABS_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:'\",;()]+/)+([^\s/:'\",;()]*)")


# The server's wording of remedies that a web client can only pass on to whoever runs the
# library: the command that fixes it. Other errors carry their own hint.
_ADVICE: dict[str, Callable[[VidsearchError], str]] = {
    "recognize_first": lambda e: f"run `vidsearch enrich recognize --labels {e.value}` on the library first",
    "index_first": lambda e: "index a folder into it first (`vidsearch index DIR`)",
}


def _worded(exc: BaseException) -> str:
    advice = _ADVICE.get(exc.remedy or "") if isinstance(exc, VidsearchError) else None
    if isinstance(exc, VidsearchError) and advice is not None:
        head = f"{exc.argument} {exc.what}" if exc.argument else exc.what
        return f"{head}; {advice(exc)}"
    return str(exc)


def public_message(exc: BaseException) -> str:
    """The first line of an error's message (the server's wording), without server paths."""
    text = _worded(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return _ABS_PATH.sub(lambda m: m.group(1) or "<folder>", text)[:500]


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _status_for(exc: VidsearchError) -> int:
    if isinstance(exc, (NotFound, MediaError)):  # MediaError: a still that no frame of the file gives
        return 404
    if isinstance(exc, UnsupportedMediaType):
        return 415
    if isinstance(exc, ModelError):
        return 503  # the server cannot load its model: not the client's fault
    return 400


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VidsearchError)
    async def _vidsearch_error(_: Request, exc: VidsearchError) -> JSONResponse:
        if isinstance(exc, (InputError, MediaError, NotFound)):
            LOG.info("%s: %s", type(exc).__name__, exc)
        else:
            LOG.warning("%s: %s", type(exc).__name__, exc)
        return _json_error(_status_for(exc), public_message(exc))

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json_error(400, validation_message(exc))

    @app.exception_handler(ValidationError)
    async def _body_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return _json_error(400, validation_message(exc))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return _json_error(413, f"request body too large (limit {int(exc.args[0]) // 1024} KiB)")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 404:
            message = f"nothing at {request.url.path[:80]}; the API is under /api/v1 (see /docs)"
        return _json_error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        LOG.error("unexpected error", exc_info=exc)
        return _json_error(500, "internal error; the server log has the details")


def create_app(config: ServeConfig | None = None, state: ServeState | None = None) -> FastAPI:
    """Build the web app over a library.

    Args:
        config: how to serve (library, token, limits); defaults are the safe ones.
        state: an already opened :class:`ServeState` (tests, benchmarks); else one is opened
            from ``config`` and closed when the app shuts down.

    Raises:
        LibraryError: the library does not exist or cannot be opened.
    """
    config = config or ServeConfig()
    owned = state is None
    state = state or ServeState(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start_loading()  # the first search must not pay the model's load
        yield
        if owned:
            state.close()

    try:
        app_version = version("vidsearch")
    except PackageNotFoundError:  # running from a source tree that is not installed
        app_version = "0"
    app = FastAPI(
        title="vidsearch",
        version=app_version,
        description="Search a video library by text or by example and watch the moments it finds.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.serve = state
    _install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(scores_router)
    app.include_router(library_router)
    app.include_router(media_router)
    app.include_router(clips_router)
    app.include_router(streams_router)
    static = files("vidsearch.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> Any:
        return FileResponse(str(static / "index.html"), media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Any:
        # browsers ask for /favicon.ico before (or without) reading the page's <link rel="icon">
        return FileResponse(str(static / "favicon.svg"), media_type="image/svg+xml")

    app.add_middleware(
        Guard,
        hosts=allowed_host_names(config.host, config.allowed_hosts),
        token=config.token,
        max_body=config.max_body_bytes,
        max_upload=config.max_upload_bytes,
    )
    return app
