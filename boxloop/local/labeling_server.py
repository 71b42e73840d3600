"""The local host of the labeling API: a standard-library ``ThreadingHTTPServer``.

A thin adapter: it checks what only an HTTP host can (the ``Host`` header against DNS
rebinding, the body size), turns each request into an `ApiRequest` for
`boxloop.labeling.LabelingApi`, and writes the answer. Besides the API it serves the packaged
web app (``boxloop/labeling/static``): ``/`` is ``index.html``, ``/static/<name>`` one of the
files in that folder, looked up by name in a listing made at start, so no request path ever
reaches the file system.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from boxloop.labeling.contract import MAX_BODY_BYTES, ApiError, ApiRequest, ApiResponse

if TYPE_CHECKING:
    from boxloop.labeling.api import LabelingApi

LOG = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parents[1] / "labeling" / "static"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
}


def static_files(folder: Path) -> dict[str, Path]:
    """URL path -> file for every file under ``folder`` (``/`` is ``index.html``)."""
    files: dict[str, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                files["/static/" + path.relative_to(folder).as_posix()] = path
    if "/static/index.html" in files:
        files["/"] = files["/static/index.html"]
    return files


def host_allowed(host_header: str, bound_host: str, port: int) -> bool:
    """Whether ``Host`` names this server: its port, and an IP, ``localhost`` or its name.

    A DNS-rebinding page reaches the server under its own domain name, which is none of these,
    so it is refused (421) before any route runs.
    """
    name, sep, port_text = host_header.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) != port:
        return False
    name = name.strip("[]").lower()
    if name in ("localhost", bound_host.lower()):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the run's progress owns the console."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            try:
                response = self._handle()
            except Exception as exc:  # a bug must not cost the page its connection
                LOG.exception("labeling API: %s %s failed", self.command, self.path)
                response = ApiResponse.error(
                    ApiError("internal", f"the server failed on this request: {exc!r}")
                )
            self._respond(response)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _handle(self) -> ApiResponse:
        server = self.server
        if not host_allowed(self.headers.get("Host", ""), server.bound_host, server.port):
            return ApiResponse.error(
                ApiError("bad_host", "this server answers only under its own address", "Host")
            )
        url = urlsplit(self.path)
        path = url.path
        if self.command == "GET" and (path == "/" or path.startswith("/static/")):
            found = server.static.get(path)
            if found is None:
                return ApiResponse.error(ApiError("not_found", f"no such file: {path}"))
            return ApiResponse(file=str(found), content_type=_content_type(found))
        body, error = self._read_body()
        if error is not None:
            return ApiResponse.error(error)
        request = ApiRequest(
            method=self.command,
            path=path,
            query=dict(parse_qsl(url.query)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        return server.api.handle(request)

    def _read_body(self) -> tuple[Any, ApiError | None]:
        length_text = self.headers.get("Content-Length", "0") or "0"
        if not length_text.isdigit():
            self.close_connection = True
            return None, ApiError("bad_request", "Content-Length must be a number")
        length = int(length_text)
        if length > self.server.max_body:
            self.close_connection = True  # the body is left unread
            return None, ApiError(
                "too_large", f"the request body is {length} bytes, over {self.server.max_body}"
            )
        if not length:
            return None, None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw), None
        except (ValueError, UnicodeDecodeError):
            return None, ApiError("bad_request", "the request body is not valid JSON")

    def _respond(self, response: ApiResponse) -> None:
        if response.file is not None:
            try:
                payload = Path(response.file).read_bytes()
            except OSError:
                response = ApiResponse.error(ApiError("not_found", "the image cannot be read"))
                payload = json.dumps(response.body).encode()
        else:
            payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(payload)),
            "Cache-Control": "no-store",
            **_SECURITY_HEADERS,
            **response.headers,
        }
        if self.close_connection:
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _content_type(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return (
        kind + "; charset=utf-8"
        if kind.startswith("text/") or kind.endswith("javascript")
        else kind
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: LabelingApi
    bound_host: str
    port: int
    max_body: int
    static: dict[str, Path]


class LabelingServer:
    """The labeling API and app on ``host:port`` (``port`` 0: a free one), in a thread."""

    def __init__(
        self,
        api: LabelingApi,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        static_dir: Path = STATIC_DIR,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        """Bind now (so the port is known and a second run on it fails at once).

        Raises:
            OSError: the address is taken or cannot be bound.
        """
        self._server = _Server((host, port), _Handler)
        self._server.api = api
        self._server.bound_host = host
        self._server.port = self._server.server_address[1]
        self._server.max_body = max_body
        self._server.static = static_files(static_dir)
        self.host = host
        self.port = self._server.port
        self._thread: threading.Thread | None = None

    def start(self) -> LabelingServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="boxloop-labeling",
                daemon=True,
            )
            self._thread.start()
        return self

    def url(self, token: str) -> str:
        """The address to open: the token rides in the fragment, never sent to the server."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/#token={token}"

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
