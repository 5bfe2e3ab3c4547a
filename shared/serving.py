"""The service factory: one FastAPI app per deployed vertical.

The app mounts the vertical's router under `/v1/<vertical>/`, adds `/health`, `/ready`,
`/metrics` and `/v1/info`, and wraps every request in the same guards, outermost first:

1. metrics and request logs (`shared.observability`);
2. the API key (`X-API-Key`, when `VERTICALS_API_KEY` is set), checked before any body is read;
3. the body limit: a body over `max_body_bytes` is a 413, declared or chunked, and a JSON body
   that is not UTF-8 is a 400 naming the byte.

Errors are JSON `{"detail": str}` (422 adds `errors`, one per field), documented in OpenAPI for
every route, and never carry a server path. The model loads in the lifespan, not at import; if
it fails, `/ready` answers 503 with the reason. `VERTICALS_DOCS=off` removes `/docs`, `/redoc`
and `/openapi.json`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from shared.errors import InputError, VerticalsError
from shared.observability import MetricsMiddleware, ServiceMetrics
from shared.registry import Vertical, build_settings, load_runtime
from shared.settings import ServeSettings

log = logging.getLogger(__name__)


class ErrorResponse(BaseModel):
    """Every error the services answer: what went wrong and how to fix it."""

    detail: str


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ValidationErrorResponse(ErrorResponse):
    """A 422: `detail` sums up, `errors` has one entry per field at fault."""

    errors: list[FieldError] = []


ERROR_STATUSES = {
    400: "Bad request: the body is not UTF-8, or the input is unusable as a whole",
    401: "Missing or wrong X-API-Key header",
    404: "Not found",
    409: "Conflict with the stored state",
    413: "Request body, upload or requested result over its limit",
    415: "Unsupported file type",
    422: "A field is invalid; `errors` names each",
    429: "Too many uploads in progress; retry after the Retry-After seconds",
    503: "The model is not loaded (see /ready)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer these statuses (beyond the core's own)."""
    return {s: {"model": ErrorResponse, "description": ERROR_STATUSES[s]} for s in statuses}


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


def add_tenant_routes(router: APIRouter) -> None:
    """`GET /tenants` and `POST /tenants/rescan` on a vertical's router, for a runtime whose
    `tenants` is its `shared.tenants.TenantPool` (None where it serves no tenants: a 404)."""
    from shared.tenants import RescanResponse, TenantsResponse, served_pool

    @router.get("/tenants", response_model=TenantsResponse, responses=error_responses(404))
    def get_tenants(runtime=Depends(get_runtime)) -> dict[str, Any]:
        """The tenants on disk and in memory, the cache's capacity and its counters."""
        return served_pool(runtime.tenants).info()

    @router.post("/tenants/rescan", response_model=RescanResponse, responses=error_responses(404))
    def rescan_tenants(runtime=Depends(get_runtime)) -> dict[str, Any]:
        """Unloads the tenants removed or replaced on disk (a replaced one reloads when used).

        Needed only to free memory at once: each request checks its tenant's folder anyway.
        """
        return served_pool(runtime.tenants).rescan()


async def upload_slot(request: Request):
    """FastAPI dependency of upload routes: at most `max_concurrent_uploads` decode at once per
    worker (decoded uploads are the largest allocations a request makes, so this bounds a
    worker's memory). Others wait for a slot up to `upload_wait_s`, then get 429 with
    `Retry-After`."""
    state = request.app.state
    settings = state.settings
    try:
        await asyncio.wait_for(state.upload_slots.acquire(), timeout=settings.upload_wait_s)
    except TimeoutError:
        raise HTTPException(
            status_code=429,
            detail=f"{settings.max_concurrent_uploads} uploads are being processed and others "
            f"waited {settings.upload_wait_s:g} s; retry shortly",
            headers={"Retry-After": "1"},
        ) from None
    state.uploads_in_progress += 1
    try:
        yield
    finally:
        state.uploads_in_progress -= 1
        state.upload_slots.release()


PUBLIC_ROUTE: dict[str, Any] = {"x-verticals-public": True}
"""`openapi_extra` of a route that needs no API key: a page shell that holds no data and sends
the key itself on the API calls it makes (e.g. a dashboard). Data routes never use it."""

UPLOAD_RESPONSES = error_responses(413, 415, 429)
"""`responses=` of a route that takes an upload (with `Depends(upload_slot)`)."""


class AnyIdConvertor(Convertor[str]):
    """A path segment holding a customer's id as it is: slashes and line breaks included
    (Starlette's `path` stops at a line break). Routes name it as `{item_id:id}`; only the dot
    segments `.` and `..` stay out of reach, as clients normalise them away."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", AnyIdConvertor())

_SERVER_PATH = re.compile(r"(?<![\w.~/-])(?:/[^\s/'\":,;()\[\]{}<>|]+){2,}/?")


def redact_paths(message: str) -> str:
    """`message` with each absolute server path cut to its last part (`/srv/a/b.csv` -> `b.csv`)."""
    return _SERVER_PATH.sub(lambda m: Path(m.group().rstrip("/")).name, message)


def _public_paths(router, prefix: str) -> list[re.Pattern]:
    """Path patterns of the router's `PUBLIC_ROUTE`s (exempt from the API key)."""
    return [
        compile_path(prefix + route.path)[0]
        for route in router.routes
        if (getattr(route, "openapi_extra", None) or {}).get("x-verticals-public")
    ]


class GuardMiddleware:
    """API key first, then the body: 401 before any byte is parsed, 413 for an oversized body
    (declared or chunked), 400 for a JSON body that is not UTF-8. The body is read here once,
    up to the limit, and replayed to the app."""

    def __init__(self, app, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        settings = self.fastapi_app.state.settings
        headers = dict(scope.get("headers") or [])
        if settings.api_key and scope["path"].startswith("/v1/"):
            given = headers.get(b"x-api-key", b"").decode("latin-1")
            public = self.fastapi_app.state.public_paths
            if not secrets.compare_digest(given, settings.api_key) and not any(
                p.match(scope["path"]) for p in public
            ):
                return await _reject(send, 401, "missing or wrong X-API-Key header")
        body, problem = await _read_body(receive, headers, settings.max_body_bytes)
        if problem is not None:
            return await _reject(send, *problem)
        if b"json" in headers.get(b"content-type", b""):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                detail = f"request body is not valid UTF-8 (byte {exc.start}: {exc.reason}); send UTF-8 encoded JSON"
                return await _reject(send, 400, detail)
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive, headers: dict, limit: int) -> tuple[bytes, tuple | None]:
    too_big = (413, f"request body exceeds the limit of {limit} bytes")
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return b"", too_big
    chunks, seen = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"", (400, "client disconnected before the body was sent")
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            return b"", too_big
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reject(send, status: int, detail: str) -> None:
    response = JSONResponse(status_code=status, content={"detail": detail})
    await response({"type": "http"}, None, send)


def create_app(
    vertical: Vertical, artifact_dir: str | Path | None, settings: ServeSettings | None = None
) -> FastAPI:
    """Builds the service app for `vertical`, serving the artifact at `artifact_dir`.

    `settings` default to the environment (`vertical.settings_cls`); the artifact is checked and
    loaded in the lifespan with them (`shared.registry.load_runtime`).
    """
    settings = build_settings(vertical, settings)
    docs = settings.docs
    app = FastAPI(
        title=f"verticals: {vertical.name}",
        summary=vertical.summary,
        version=_version(),
        lifespan=_lifespan(vertical, artifact_dir, settings),
        docs_url=None,  # served by _add_offline_docs, with no CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings, app.state.vertical = settings, vertical
    app.state.runtime, app.state.load_error = None, None
    app.state.upload_slots = asyncio.Semaphore(settings.max_concurrent_uploads)
    app.state.uploads_in_progress = 0  # for /metrics
    app.state.metrics = ServiceMetrics(gauges=lambda: _gauges(app))
    app.add_middleware(GuardMiddleware, fastapi_app=app)
    app.add_middleware(
        MetricsMiddleware,
        metrics=app.state.metrics,
        routes=lambda: [*app.openapi().get("paths", {}), "/openapi.json", "/docs", "/redoc"],
        log_requests=settings.log_format == "json",
    )
    _add_error_handlers(app)
    _add_ops_routes(app, vertical.name)
    if docs:
        _add_offline_docs(app)
    router, prefix = vertical.build_router(), f"/v1/{vertical.name}"
    app.state.public_paths = _public_paths(router, prefix)
    app.include_router(
        router,
        prefix=prefix,
        tags=[vertical.name],
    )
    _document_errors(app)
    return app


def _gauges(app: FastAPI) -> dict[str, float]:
    runtime = app.state.runtime
    values = {
        "ready": float(runtime is not None),
        "uploads_in_progress": app.state.uploads_in_progress,
    }
    if runtime is not None and hasattr(runtime, "gauges"):
        values.update({k: float(v) for k, v in runtime.gauges().items()})
    return values


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
                engine.observer = app.state.metrics.observe_batch
                await engine.start()
            app.state.runtime = runtime
        except Exception as exc:  # the service stays up and says why it is not ready
            log.exception("model failed to load")
            app.state.load_error = redact_paths(f"{type(exc).__name__}: {exc}")
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

    @app.get("/ready", tags=["ops"], responses={503: {"description": "Not ready, with why"}})
    def ready(request: Request):
        """Readiness: the model is loaded; 503 with the reason otherwise."""
        if request.app.state.runtime is None:
            reason = request.app.state.load_error or "model is still loading"
            return JSONResponse(status_code=503, content={"ready": False, "reason": reason})
        return {"ready": True}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus metrics: requests, latency, batches, queue time, sessions and stores."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(request.app.state.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/info", tags=["ops"])
    def info(runtime=Depends(get_runtime)) -> dict[str, Any]:
        """Model, version and metrics of the served artifact, and batching counters."""
        details = dict(runtime.info())
        engine = getattr(runtime, "engine", None)
        if engine is not None:
            details["engine"] = engine.stats.as_dict()
        return {"vertical": name, "version": _version(), **details}


def _add_offline_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` from assets shipped in a PyPI package (`fastapi-offline`),
    so the pages work where no CDN can be reached."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    assets = "/docs-assets"
    app.mount(
        assets, StaticFiles(directory=str(files("fastapi_offline") / "static")), "docs-assets"
    )
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title}: API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc():
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title}: API",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        errors = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ())),
                "message": redact_paths(str(err.get("msg"))),
                "type": str(err.get("type")),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse(status_code=422, content={"detail": summary, "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        detail = redact_paths(str(exc.detail))
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(InputError)
    async def input_error(_: Request, exc: InputError):
        return JSONResponse(status_code=exc.status_code, content={"detail": redact_paths(str(exc))})

    @app.exception_handler(VerticalsError)
    async def verticals_error(_: Request, exc: VerticalsError):
        return JSONResponse(status_code=400, content={"detail": redact_paths(str(exc))})


def _document_errors(app: FastAPI) -> None:
    """Adds the core's error statuses and schemas to every operation of the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _patch_operations(build())
        return app.openapi_schema

    app.openapi = openapi


def _patch_operations(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorResponse, FieldError, ValidationErrorResponse):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    for path, operations in schema.get("paths", {}).items():
        for op in operations.values():
            codes = set()
            if path.startswith("/v1/"):
                codes |= {400, 503} | ({401} if not op.get("x-verticals-public") else set())
            if "requestBody" in op:
                codes |= {400, 413, 422}
            if op.get("parameters"):
                codes.add(422)
            responses = op.setdefault("responses", {})
            for code in sorted(codes):
                ref = "ValidationErrorResponse" if code == 422 else "ErrorResponse"
                entry = {"$ref": f"#/components/schemas/{ref}"}
                responses[str(code)] = {
                    "description": ERROR_STATUSES[code],
                    "content": {"application/json": {"schema": entry}},
                }
    used = json.dumps(schema.get("paths"))
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, replaced above
        if name in components and f'"#/components/schemas/{name}"' not in used:
            del components[name]


def _version() -> str:
    from shared import __version__

    return __version__
