"""A tiny download server on 127.0.0.1 for the fetch tests: good, truncated and wrong files on demand.

Example:
    >>> with AssetServer() as server:
    ...     server.serve("file.bin", b"hello")
    ...     server.serve("cut.bin", b"hello world", send=5)   # announces 11 bytes, sends 5
    ...     url = server.url + "/file.bin"
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        name = self.path.lstrip("/")
        self.server.requests.append(name)
        queue = self.server.responses.get(name)
        if not queue:
            self.send_error(404, "no such file")
            return
        body, send = queue.pop(0) if len(queue) > 1 else queue[0]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))  # always the full size, like a real server
        self.end_headers()
        self.wfile.write(body[:send])
        self.close_connection = True

    def log_message(self, *args):
        pass  # keep test output clean


class AssetServer:
    """Serve byte strings by file name; each ``serve`` call queues one response (the last one repeats)."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.responses = {}
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def requests(self) -> list[str]:
        """File names asked for, in order."""
        return self.httpd.requests

    def serve(self, name: str, body: bytes, send: int | None = None) -> None:
        """Queue a response for ``name``: ``body`` announced in full, only ``send`` bytes actually sent."""
        self.httpd.responses.setdefault(name, []).append((body, len(body) if send is None else send))

    def __enter__(self) -> AssetServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class SilentServer:
    """Accepts TCP connections (the kernel's backlog does) but never answers: a hung server."""

    def __enter__(self) -> str:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        self.sock.close()
