"""Pages for people: the API's reference (``/docs``) and the moderators' review page (``/review``).

Why self-hosted: FastAPI's own ``/docs`` loads Swagger UI from a CDN, so on an air-gapped cluster
it is a blank page. Swagger UI's files come from the ``fastapi-offline`` package instead (its
``static/`` folder: Swagger UI 5, which reads the OpenAPI 3.1 document FastAPI writes; 4.x cannot)
and the review page's from ``vdup/api/review/``; both are served under ``/static`` by this app.
No page names another host.

The pages hold no data, so they need no key: the review page asks for a moderator key and sends
it with every call to the JSON endpoints (``routes/review.py``), which check it.
"""

from __future__ import annotations

import html
import string
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Swagger UI's dist files (swagger-ui-bundle.js, swagger-ui.css, favicon.png).
SWAGGER_DIR = Path(str(files("fastapi_offline") / "static"))
#: The review page: review.html (the shell) and static/ (review.js, review.css).
REVIEW_DIR = Path(__file__).resolve().parent.parent / "review"

#: The review page may load only this app's scripts, styles and data; thumbnails are blob: URLs
#: made from authenticated fetches. Nothing inline, so injected markup cannot run.
REVIEW_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def mount_static(app: FastAPI) -> None:
    """Serve the pages' assets: ``/static/swagger/*`` and ``/static/review/*``."""
    app.mount("/static/swagger", StaticFiles(directory=SWAGGER_DIR), name="static-swagger")
    app.mount("/static/review", StaticFiles(directory=REVIEW_DIR / "static"), name="static-review")


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=root + (request.app.openapi_url or "/openapi.json"),
        title=f"{request.app.title} - API reference",
        swagger_js_url=f"{root}/static/swagger/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/swagger/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/review")
async def review_page(request: Request) -> HTMLResponse:
    shell = string.Template((REVIEW_DIR / "review.html").read_text(encoding="utf-8"))
    root = html.escape(request.scope.get("root_path", ""), quote=True)
    return HTMLResponse(
        shell.substitute(root=root),
        headers={"Content-Security-Policy": REVIEW_CSP, "Cache-Control": "no-store"},
    )
