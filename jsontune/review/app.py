"""The review page's server: a FastAPI app over one `Review`, and `serve` to run it with uvicorn.

Endpoints (JSON): GET /api/summary (counts, audit), GET /api/queue?field=&below= (ids, statuses, where to
start), GET /api/row?id= (text, pieces to highlight, fields), POST /api/save {id, values, version},
POST /api/decide {id, status, values, version}, POST /api/undo. A save answers only once the change is on
disk (`store.ReviewStore`); one based on an older version of the row is answered 409 with one sentence.

Safe by default: `serve` binds to loopback, where only the local machine's users can reach the page, and accepts
only requests addressed to a loopback name (a web page cannot reach it by DNS rebinding); a change must be
JSON from the page's own origin (another site's page cannot post one). Any other address
needs a token, and then every request must carry it (header X-Review-Token, ?token=, or the cookie the first
page load sets). The page loads nothing from elsewhere and may send nothing elsewhere (Content-Security-Policy).
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.middleware.trustedhost import TrustedHostMiddleware

from jsontune.errors import JsontuneError
from jsontune.review.store import StaleRow

if TYPE_CHECKING:
    from jsontune.review.job import Review

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "jsontune_review_token"
TOKEN_HEADER = "X-Review-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Save(BaseModel):
    """Fields typed on the page ({field: text}) for row `id`, as of the row's `version` the page saw."""

    id: str
    values: dict[str, str] = {}
    version: int


class Decide(Save):
    status: Literal["accepted", "skipped", "unusable", "open"]


def create_app(review: Review, token: str | None = None, hosts: list[str] | None = None) -> FastAPI:
    """The page and its API for `review`. With `token`, every request must carry it; with `hosts`, only
    requests whose Host header names one of them are answered."""
    app = FastAPI(title="jsontune review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable) -> Any:
        if token is not None and not _carries(request, token):
            return JSONResponse({"detail": "this review page needs its token (open the address it printed)."}, 401)
        refusal = _cross_site(request)
        if refusal:
            return JSONResponse({"detail": refusal}, 403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    if hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)

    @app.exception_handler(StaleRow)
    async def stale(request: Request, error: StaleRow) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 409)

    @app.exception_handler(JsontuneError)
    async def refused(request: Request, error: JsontuneError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 404 if "has no row" in str(error) else 400)

    @app.get("/")
    def page(request: Request) -> Any:
        if token is not None and request.query_params.get("token"):
            moved = RedirectResponse("/", 303)  # the token leaves the address bar and the history
            moved.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return moved
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/summary")
    def summary() -> dict[str, Any]:
        return review.summary()

    @app.get("/api/queue")
    def queue(field: str | None = None, below: float | None = None) -> dict[str, Any]:
        return review.queue(field or None, below)

    @app.get("/api/row")
    def row(id: str) -> dict[str, Any]:
        return review.row(id)

    @app.post("/api/save")
    def save(body: Save) -> dict[str, Any]:
        return {"row": review.save(body.id, body.values, body.version), "summary": review.summary()}

    @app.post("/api/decide")
    def decide(body: Decide) -> dict[str, Any]:
        return {"row": review.decide(body.id, body.status, body.values, body.version), "summary": review.summary()}

    @app.post("/api/undo")
    def undo() -> dict[str, Any]:
        ids = review.undo()
        if not ids:
            raise JsontuneError("there is nothing left to undo.")
        return {"ids": ids, "row": review.row(ids[0]), "summary": review.summary()}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _carries(request: Any, token: str) -> bool:
    given = (
        request.headers.get(TOKEN_HEADER)
        or request.query_params.get("token")
        or request.cookies.get(TOKEN_COOKIE)
        or ""
    )
    return hmac.compare_digest(given.encode(), token.encode())


def _cross_site(request: Any) -> str | None:
    """Why a change request is refused as coming from another site, or None: a change must be JSON (a form or
    a bare body that another site's page may send without asking is not) from a page of this server."""
    from urllib.parse import urlsplit

    if request.method in ("GET", "HEAD"):
        return None
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return "a change must be sent as application/json by the review page."
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return f"a change from {origin} is refused: only the review page itself may send one."
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), refused in one sentence when it is taken."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise JsontuneError(f"cannot listen on {host}:{port} ({e.strerror}); pass another --port.") from None
    sock.listen(128)
    return sock


def serve(
    review: Review,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the page until interrupted; `ready` is called with its address (the token in it, where there is
    one) once the port is open. Another --host than loopback needs a token."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise JsontuneError(
            f"--host {host} lets other machines reach the page; give --token SECRET as well (every request "
            "must then carry it), or leave --host at 127.0.0.1."
        )
    sock = bind(host, port)
    hosts = None if token else [h.strip("[]") for h in LOOPBACK_NAMES]
    app = create_app(review, token, hosts)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    address = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    if ready is not None:
        ready(address)
    server.run(sockets=[sock])
