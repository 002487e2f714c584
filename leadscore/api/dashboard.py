"""The built web dashboard, served at ``/`` by ``leadscore api``.

The dashboard (``dashboard/``, TypeScript; being written) is built into static files once;
the API serves them and needs no Node at run time. Where the files are:
``LEADSCORE_DASHBOARD_DIR``, else ``dashboard/dist`` of a source checkout.

- A ``GET`` that no API route answers is the dashboard's: a file of the build, or
  ``index.html`` for any other path without a file extension (``/leads/acme-42``), so the
  dashboard's own routes survive a reload. API paths never are (``/v1/…``, ``/ai/…``,
  ``/docs``, ``/metrics`` …: a JSON 404 as before), nor other methods.
- Hashed assets (``/assets/…``) are cached for a year; ``index.html`` is revalidated on
  every load, so a new build shows at the next reload.
- No API key is in the files: the dashboard asks for one and keeps it in the tab's memory.
- Headers: a Content-Security-Policy allowing only this origin (and its WebSocket feed),
  ``nosniff``, no referrer, no framing.

Without built files, ``/`` says where the API looks for them.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi.responses import FileResponse, HTMLResponse, Response

#: First path segments that belong to the API, never to the dashboard.
API_PREFIXES = ("v1", "ai", "docs", "redoc", "openapi.json", "metrics", "healthz", "readyz")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

NOT_BUILT = """<!doctype html><html><head><meta charset="utf-8"><title>leadscore</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>leadscore</h1>
<p>No built dashboard was found. Point <code>LEADSCORE_DASHBOARD_DIR</code> at a built
dashboard (a directory holding <code>index.html</code>) and restart the API.</p>
<p>The API is here: <a href="/docs">/docs</a>.</p>
</body></html>"""


def find_dashboard(configured: Path | None) -> Path | None:
    """The directory with the built dashboard (holding ``index.html``), or ``None``."""
    candidates = (
        [configured]
        if configured is not None
        else [Path(__file__).resolve().parents[2] / "dashboard" / "dist"]
    )
    for candidate in candidates:
        if candidate is not None and (candidate / "index.html").is_file():
            return candidate.resolve()
    return None


def dashboard_response(root: Path | None, path: str) -> Response | None:
    """What ``GET /<path>`` answers when no API route matched; ``None`` for API paths (a JSON 404)."""
    first = path.split("/", 1)[0]
    if first in API_PREFIXES:
        return None
    if root is None:
        return HTMLResponse(NOT_BUILT, headers=SECURITY_HEADERS)
    target = (root / path).resolve() if path else root / "index.html"
    if not target.is_relative_to(root):  # ../ out of the directory
        return None
    if target.is_file():
        cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
        media_type = mimetypes.guess_type(target.name)[0]
        return FileResponse(
            target, media_type=media_type, headers={**SECURITY_HEADERS, "Cache-Control": cache}
        )
    if "." in path.rsplit("/", 1)[-1]:  # a missing file, not a dashboard route
        return None
    return FileResponse(
        root / "index.html",
        media_type="text/html",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
