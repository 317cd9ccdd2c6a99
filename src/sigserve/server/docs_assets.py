"""Swagger UI's files for the /docs page, served by sigserve itself from the `swagger-ui-bundle-v2`
package (Swagger UI 5, which renders OpenAPI 3.1), so the page works without internet. Only the
files the page loads are served, by name: no path from the request ever reaches the filesystem."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from sigserve.errors import EndpointNotFound

STATIC_PREFIX = "/docs/static/"
_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
# A URL names the Swagger UI version (`?v=`): a new version is a new URL, so a day's caching is safe.
_CACHE_CONTROL = "public, max-age=86400"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


@functools.cache
def swagger_ui_version() -> str:
    """`5.31.0` from the package's `vendor/swagger-ui-5.31.0` folder."""
    return swagger_ui_dir().name.removeprefix("swagger-ui-")


def asset_url(name: str) -> str:
    return f"{STATIC_PREFIX}{name}?v={swagger_ui_version()}"


@functools.cache
def _asset(name: str) -> Asset:
    """Read once per worker: the files are the package's and never change while it runs."""
    body = (swagger_ui_dir() / name).read_bytes()
    return Asset(body, _FILES[name], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


async def docs_static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _FILES:
        raise EndpointNotFound(f"No such file: {STATIC_PREFIX}{name[:100]}")
    asset = _asset(name)
    headers = {"Cache-Control": _CACHE_CONTROL, "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
