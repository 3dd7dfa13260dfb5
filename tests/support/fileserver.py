"""A static file server on 127.0.0.1 for tests that fetch links: serves bytes from a dict,
answers 404 for anything else, records the paths asked for, and stops with its context."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Served:
    base: str
    seen: list[str] = field(default_factory=list)


@contextmanager
def serve_files(files: dict[str, bytes]) -> Iterator[Served]:
    """files maps paths ('/v/a.mp4') to bodies; yields the base URL and the request log."""
    served = Served(base="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.seen.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
