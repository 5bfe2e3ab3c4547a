"""The dashboard's charting library, served by the service itself: no CDN, works air-gapped.

plotly.js ships inside the `plotly` PyPI package (`plotly/package_data/plotly.min.js`, about
4.8 MB, 1.4 MB gzipped). The route answers it gzipped when the browser accepts that, with an
ETag and a day of caching; the page asks for it with the package version in the query, so an
upgrade is fetched afresh.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi.responses import Response

from shared.errors import InputError

CACHE_CONTROL = "public, max-age=86400"
MISSING = (
    "plotly.js is not installed on the server: the dashboard draws its charts with it; "
    "install the 'plotly' package (pip install 'plotly>=5') and restart the service"
)


def plotly_path() -> Path:
    """Where the installed `plotly` package keeps `plotly.min.js` (found without importing it).

    Raises:
        InputError: 404 naming the package to install, when it is missing.
    """
    spec = importlib.util.find_spec("plotly")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise InputError(MISSING, 404)


def plotly_version() -> str:
    """The installed plotly package's version (the page's cache key), or `missing`."""
    try:
        return version("plotly")
    except PackageNotFoundError:
        return "missing"


@lru_cache(maxsize=2)
def _bundle(path: str, mtime: float) -> tuple[bytes, bytes, str]:
    """(raw bytes, gzipped bytes, ETag) of the bundle; compressed once per file version."""
    raw = Path(path).read_bytes()
    etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    return raw, gzip.compress(raw, compresslevel=6, mtime=0), etag


def plotly_response(accept_encoding: str = "", if_none_match: str | None = None) -> Response:
    """The bundle as an HTTP response: 304 when the client's copy is current, else the bytes."""
    path = plotly_path()
    raw, packed, etag = _bundle(str(path), path.stat().st_mtime)
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag, "Vary": "Accept-Encoding"}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    if "gzip" in accept_encoding.lower():
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="text/javascript", headers=headers)
    return Response(raw, media_type="text/javascript", headers=headers)
