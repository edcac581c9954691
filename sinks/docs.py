"""The API's own documentation, served with no network: Swagger UI and ReDoc from the assets that the
fastapi-offline package ships (not a CDN), and an OpenAPI document that names the bearer scheme and the
upload's multipart body, which FastAPI cannot infer from a handler that streams the request itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from reelscope.sinks.contracts import SCHEMA_PATHS

ASSETS = Path(fastapi_offline.__file__).with_name("static")
PUBLIC = {"/health", "/docs", "/redoc", "/openapi.json", *SCHEMA_PATHS}
"""Paths that need no token (every other operation gets the bearer requirement in OpenAPI)."""

UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the video or audio file"},
                    "metadata": {"type": "string", "description": "a JSON object: title, caption, ..."},
                    "options": {"type": "string", "description": "a JSON object: per-analyzer options"},
                },
            }
        }
    },
}


def install(app: FastAPI, upload_path: str) -> None:
    """Serve /docs, /redoc and their assets locally and complete the OpenAPI document."""
    app.mount("/docs-assets", StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "REELSCOPE_API_TOKEN; live streams and media also take `?token=`",
                }
            }
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    if path not in PUBLIC:
                        operation["security"] = [{"bearer": []}]
            schema["paths"][upload_path]["post"]["requestBody"] = UPLOAD_BODY
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
