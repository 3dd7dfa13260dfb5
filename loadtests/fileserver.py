"""A threaded static server on 127.0.0.1 for the load test's pool of videos.

The API fetches every checked video by link, so a load test needs an origin that serves videos
fast enough never to be the bottleneck, and that can mint *new* videos on demand. Re-encoding a
fresh video per request would cost more CPU than the check itself, so a "new" video is a pool
file with a unique trailer:

    GET /file/<name>        the pool file's bytes, unchanged
    GET /new/<token>/<name> the same bytes followed by one ISO-BMFF ``free`` box whose payload
                            names the token (``unique_variant``)
    GET /pool.json          the pool: name, size, kind and group of every file

MP4 readers skip ``free`` boxes (ISO/IEC 14496-12, 8.1.2), so a variant decodes to exactly the
frames and sound of its file while its SHA-256 differs. What that means for the decisions: a
variant is never caught by the exact-hash shortcut and takes the full path (decode, descriptors,
search, alignment), which is what the load should cost; but its *content* is that of the pool
file, so the first variant of a file is an original and every later variant of the same file is
a visual duplicate of it (score ~1). Requesting one ``/new/<token>/<name>`` URL twice returns the
same bytes twice, which is how the load test makes exact re-uploads.

The pool: ``--dev DIR`` adds the dev benchmark's videos with their manifest kind and group (the
root original's uuid, or the video's own for a non-duplicate); ``--file`` and ``--dir`` add other
files (kind ``extra``, their own group). Names must be unique; only pool names are served, so no
path from a request ever reaches the file system.

    python loadtests/fileserver.py --dev ../shared/bench/dev --dir ../shared/bench/speed

prints its base URL (``http://127.0.0.1:PORT``) on the first line of stdout, then serves until
``--max-seconds`` pass or it gets SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import signal
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
}


def unique_variant(data: bytes, token: str) -> bytes:
    """``data`` followed by a 24+ byte ``free`` box holding ``token``: same media, new SHA-256."""
    payload = b"vdup-loadtest:" + token.encode("ascii")
    return data + struct.pack(">I4s", 8 + len(payload), b"free") + payload


@dataclass(frozen=True)
class PoolFile:
    name: str
    path: Path
    size: int
    kind: str
    group: str


def dev_pool(dev_dir: Path) -> list[PoolFile]:
    """The dev benchmark's videos (``manifest.csv`` + ``videos/``) with their kind and group."""
    out = []
    with open(dev_dir / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            path = dev_dir / row["link"]
            if not path.is_file():
                continue
            group = row["duplicate_for"] if row["is_duplicate"] == "True" else row["uuid"]
            out.append(PoolFile(path.name, path, path.stat().st_size, row["kind"], group))
    return out


def extra_pool(paths: list[Path]) -> list[PoolFile]:
    return [PoolFile(p.name, p, p.stat().st_size, "extra", p.stem) for p in paths if p.is_file()]


class Pool:
    """Pool files by name; bytes are read once and kept in memory."""

    def __init__(self, files: list[PoolFile]) -> None:
        self.files: dict[str, PoolFile] = {}
        for f in files:
            if f.name in self.files:
                raise ValueError(f"two pool files are named {f.name!r}")
            self.files[f.name] = f
        self._bytes: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def data(self, name: str) -> bytes | None:
        if name not in self.files:
            return None
        with self._lock:
            if name not in self._bytes:
                self._bytes[name] = self.files[name].path.read_bytes()
            return self._bytes[name]

    def index(self) -> bytes:
        rows = [{k: v for k, v in asdict(f).items() if k != "path"} for f in self.files.values()]
        return json.dumps({"files": rows}).encode()


def handler_for(pool: Pool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            body, media_type = self._resolve(self.path.split("?", 1)[0])
            if body is None:
                body, media_type = b"not found\n", "text/plain"
                self.send_response(HTTPStatus.NOT_FOUND)
            else:
                self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        def _resolve(self, path: str) -> tuple[bytes | None, str]:
            parts = path.strip("/").split("/")
            if parts == ["pool.json"]:
                return pool.index(), "application/json"
            if len(parts) == 2 and parts[0] == "file":
                name = parts[1]
                return pool.data(name), _media_type(name)
            if len(parts) == 3 and parts[0] == "new" and TOKEN.match(parts[1]):
                data = pool.data(parts[2])
                if data is not None:
                    return unique_variant(data, parts[1]), _media_type(parts[2])
            return None, ""

        def log_message(self, *args) -> None:
            pass

    return Handler


def _media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def start(pool: Pool, port: int = 0) -> ThreadingHTTPServer:
    """A running server on 127.0.0.1:``port`` (0 = a free one), serving in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(pool))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="pool-server", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dev",
        type=Path,
        action="append",
        default=[],
        help="a dev benchmark folder (manifest.csv + videos/)",
    )
    ap.add_argument(
        "--dir", type=Path, action="append", default=[], help="add every video file of this folder"
    )
    ap.add_argument("--file", type=Path, action="append", default=[], help="add this file")
    ap.add_argument("--port", type=int, default=0, help="0 = a free port")
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=900.0,
        help="stop after this long, s (the server never outlives a run)",
    )
    args = ap.parse_args(argv)

    files = [f for d in args.dev for f in dev_pool(d)]
    extra = list(args.file)
    for d in args.dir:
        extra += sorted(p for p in d.iterdir() if p.suffix.lower() in MEDIA_TYPES)
    files += extra_pool(extra)
    if not files:
        print("fileserver: the pool is empty", file=sys.stderr)
        return 2
    server = start(Pool(files), args.port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    print(
        f"fileserver: {len(files)} files, stopping after {args.max_seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
