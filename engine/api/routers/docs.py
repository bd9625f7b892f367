"""Swagger UI at `/docs`, with every asset served by this daemon: the swagger-ui-bundle
package ships Swagger UI's files, engine/api/static/swagger-init.js starts it. Nothing is
loaded from a CDN, and the page's CSP (`DOCS_CSP`) allows scripts, styles and requests to
this host only — no `unsafe-inline`, no external host.

Off unless the daemon sets `api_docs: true`: the OpenAPI document at /openapi.json is all a
client needs, and a page that runs 1 MB of JavaScript is attack surface few daemons need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from engine.api.errors import ApiError

router = APIRouter(include_in_schema=False)

# data: images are Swagger UI's own icons, inlined in its stylesheet.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>slo-engine API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""
_MEDIA = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript"}


def swagger_ui_dir() -> Path | None:
    """Where the swagger-ui-bundle package keeps Swagger UI, or None without it."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


@router.get("/docs", operation_id="getApiExplorer")
def docs() -> HTMLResponse:
    if swagger_ui_dir() is None:
        raise ApiError(404, "Swagger UI is not installed (pip install swagger-ui-bundle)")
    return HTMLResponse(DOCS_HTML)


@router.get("/docs/assets/{name}", operation_id="getApiExplorerAsset")
def asset(
    name: Annotated[Literal["swagger-ui.css", "swagger-ui-bundle.js"], PathParam()],
) -> FileResponse:
    directory = swagger_ui_dir()
    if directory is None:
        raise ApiError(404, "Swagger UI is not installed")
    # One day: the files change only with the package.
    headers = {"Cache-Control": "public, max-age=86400"}
    return FileResponse(directory / name, media_type=_MEDIA[name], headers=headers)
