"""A static file server with byte ranges, run in its own process: the local stand-in for an object store.

It answers single ``Range: bytes=a-b`` requests with 206, as S3 and Azure do, so GDAL's ``/vsicurl/`` reads
windows of COGs from it. It runs in a separate process because GDAL holds Python's interpreter lock while it
opens a dataset: a server thread in the reading process could not answer, and the open would hang. Every
request is appended to a log (``GET <path>`` or ``RANGE <path>``), which is how tests count requests.

``python -m earthsignature.embedded.static_http FOLDER PORT LOG``
"""

from __future__ import annotations

import functools
import re
import sys
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single byte ranges."""

    def __init__(self, *args, log: Path, **kwargs):
        self.request_log = log
        self._remaining: int | None = None
        super().__init__(*args, **kwargs)

    def _note(self, kind: str) -> None:
        with self.request_log.open("a") as handle:
            handle.write(f"{kind} {self.path.split('?', 1)[0]}\n")

    def send_head(self):
        self._note("GET")
        match = _RANGE.match(self.headers.get("Range", "").strip())
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        start = size - int(last or 0) if first == "" else int(first)
        stop = size - 1 if first == "" or last == "" else min(int(last), size - 1)
        if not 0 <= start <= stop < size:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        self._note("RANGE")
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(stop - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = stop - start + 1
        return handle

    def copyfile(self, source, outputfile) -> None:
        if self._remaining is None:
            return super().copyfile(source, outputfile)
        while self._remaining > 0:
            chunk = source.read(min(self._remaining, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            self._remaining -= len(chunk)
        self._remaining = None
        return None

    def log_message(self, format: str, *args: object) -> None:
        return


def serve(folder: Path, port: int, log: Path) -> None:
    handler = functools.partial(RangeHandler, directory=str(folder), log=log)
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        httpd.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
