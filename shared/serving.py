"""The service factory: one FastAPI app per deployed vertical.

The app mounts the vertical's router under `/v1/<vertical>/`, adds `/health`, `/ready` and
`/v1/info`, an optional API key, a request-body limit, and error handlers so that a client's
mistake is a 4xx with a reason, never a 500. The model loads in the lifespan, not at import; if
it fails, `/ready` answers 503 with the reason.
"""

from __future__ import annotations

import logging
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from shared.errors import InputError, VerticalsError
from shared.registry import Vertical, build_settings, load_runtime
from shared.settings import ServeSettings

log = logging.getLogger(__name__)


def get_settings(request: Request) -> ServeSettings:
    """FastAPI dependency: the app's settings."""
    return request.app.state.settings


def get_runtime(request: Request) -> Any:
    """FastAPI dependency: the loaded runtime, or 503 while it is missing."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        reason = getattr(request.app.state, "load_error", None) or "model is still loading"
        raise HTTPException(status_code=503, detail=f"model not ready: {reason}")
    return runtime


PUBLIC_ROUTE: dict[str, Any] = {"x-verticals-public": True}
"""`openapi_extra` of a route that needs no API key: a page shell that holds no data and sends
the key itself on the API calls it makes (e.g. a dashboard). Data routes never use it."""


def require_api_key(request: Request) -> None:
    """FastAPI dependency: 401 unless `X-API-Key` matches `VERTICALS_API_KEY` (when that is set).

    Routes marked with `openapi_extra=PUBLIC_ROUTE` are exempt.
    """
    expected = request.app.state.settings.api_key
    route = request.scope.get("route")
    if expected and (getattr(route, "openapi_extra", None) or {}).get("x-verticals-public"):
        return
    if expected and not secrets.compare_digest(request.headers.get("x-api-key", ""), expected):
        raise HTTPException(status_code=401, detail="missing or wrong X-API-Key header")


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Answers 413 when a request body is larger than `max_bytes` (declared or streamed)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send) -> None:
        response = JSONResponse(
            status_code=413,
            content={"detail": f"request body exceeds the limit of {self.max_bytes} bytes"},
        )
        await response({"type": "http"}, None, send)


class Utf8Route(APIRoute):
    """Answers 400 naming the byte when a request body is not UTF-8 (FastAPI only says it cannot parse the body). Use it as `APIRouter(route_class=Utf8Route)`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def checked(request: Request):
            body = await request.body()
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                detail = f"request body is not valid UTF-8 (byte {exc.start}: {exc.reason}); send UTF-8 encoded JSON"
                return JSONResponse(status_code=400, content={"detail": detail})
            return await handler(request)

        return checked


def create_app(
    vertical: Vertical, artifact_dir: str | Path | None, settings: ServeSettings | None = None
) -> FastAPI:
    """Builds the service app for `vertical`, serving the artifact at `artifact_dir`.

    `settings` default to the environment (`vertical.settings_cls`); the artifact is checked and
    loaded in the lifespan with them (`shared.registry.load_runtime`).
    """
    settings = build_settings(vertical, settings)
    app = FastAPI(
        title=f"verticals: {vertical.name}",
        summary=vertical.summary,
        version=_version(),
        lifespan=_lifespan(vertical, artifact_dir, settings),
    )
    app.state.settings = settings
    app.state.vertical = vertical
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    _add_error_handlers(app)
    _add_ops_routes(app, vertical.name)
    app.include_router(
        vertical.build_router(),
        prefix=f"/v1/{vertical.name}",
        tags=[vertical.name],
        dependencies=[Depends(require_api_key)],
    )
    return app


def _lifespan(vertical: Vertical, artifact_dir: str | Path | None, settings: ServeSettings):
    """Loads the runtime and starts its engine at startup; stops and closes them at shutdown.

    A model that fails to load leaves the service up, with `/ready` saying why.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.runtime, app.state.load_error = None, None
        try:
            if artifact_dir is None:
                raise VerticalsError("no artifact given: pass --artifact DIR")
            runtime = load_runtime(vertical, artifact_dir, settings)
            engine = getattr(runtime, "engine", None)
            if engine is not None:
                await engine.start()
            app.state.runtime = runtime
        except Exception as exc:  # the service stays up and says why it is not ready
            log.exception("model failed to load")
            app.state.load_error = f"{type(exc).__name__}: {exc}"
        yield
        runtime = app.state.runtime
        if runtime is not None and getattr(runtime, "engine", None) is not None:
            await runtime.engine.stop()
        if runtime is not None and hasattr(runtime, "close"):
            runtime.close()

    return lifespan


def _add_ops_routes(app: FastAPI, name: str) -> None:
    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    def ready(request: Request):
        """Readiness: the model is loaded; 503 with the reason otherwise."""
        if request.app.state.runtime is None:
            reason = request.app.state.load_error or "model is still loading"
            return JSONResponse(status_code=503, content={"ready": False, "reason": reason})
        return {"ready": True}

    @app.get("/v1/info", tags=["ops"], dependencies=[Depends(require_api_key)])
    def info(runtime=Depends(get_runtime)) -> dict[str, Any]:
        """Model, version and metrics of the served artifact, and batching counters."""
        details = dict(runtime.info())
        engine = getattr(runtime, "engine", None)
        if engine is not None:
            details["engine"] = engine.stats.as_dict()
        return {"vertical": name, "version": _version(), **details}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        errors = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg"),
                "type": err.get("type"),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse(status_code=422, content={"detail": summary, "errors": errors})

    @app.exception_handler(InputError)
    async def input_error(_: Request, exc: InputError):
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc)})

    @app.exception_handler(VerticalsError)
    async def verticals_error(_: Request, exc: VerticalsError):
        return JSONResponse(status_code=400, content={"detail": str(exc)})


def _version() -> str:
    from shared import __version__

    return __version__
