"""A real HTTP file server on 127.0.0.1 for download tests: Range requests, and a connection it can cut."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class FileServer(ThreadingHTTPServer):
    """Serves `files` (path -> bytes; PAYLOAD at /tiny.gguf) with Range support; can cut the connection
    after `cut_after` bytes of the next response longer than that."""

    cut_after: int | None = None
    ranges: list[str | None]
    files: dict[str, bytes]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.ranges.append(self.headers.get("Range"))
        if self.path not in self.server.files:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = self.server.files[self.path][start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{start + len(body)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None and len(body) > self.server.cut_after:
            self.wfile.write(body[: self.server.cut_after])
            self.server.cut_after = None
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-body
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer(("127.0.0.1", 0), Handler)
    server.ranges = []
    server.files = {"/tiny.gguf": PAYLOAD}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
