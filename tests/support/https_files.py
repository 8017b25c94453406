"""An HTTPS file server on 127.0.0.1 for tests of our download code (the installer, the
weights fetcher): a self-signed certificate that curl trusts through CURL_CA_BUNDLE,
HTTP Range support, every request recorded, and scripted misbehaviour per path.

Misbehaviours (``server.script[path]``, one per request, consumed in order; afterwards
the file is served normally):
- ``("truncate", n)``: announce the full length, send ``n`` bytes, close.
- ``("stall", n, seconds)``: send ``n`` bytes, then nothing for ``seconds``.
- ``("slow", chunk, pause)``: send the whole file, ``chunk`` bytes per ``pause`` seconds.
- ``("status", code)``: answer with that HTTP status.
- ``("no-range",)``: ignore the Range header (200 with the whole file).
- ``("trailing", n)``: no Content-Length; the rest of the file, then ``n`` more bytes, then
  close (an endless or oversized body, bounded so the test ends).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

_RANGE = re.compile(r"bytes=(\d+)-$")


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test server's certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class FileServer:
    def __init__(self, certificate: tuple[Path, Path]):
        self.files: dict[str, bytes] = {}
        self.script: dict[str, list[tuple]] = {}
        self.requests: list[tuple[str, str | None, str | None]] = []  # path, Range, Auth
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(
                    (self.path, self.headers.get("Range"), self.headers.get("Authorization"))
                )
                body = server.files.get(self.path)
                steps = server.script.get(self.path) or []
                step = steps.pop(0) if steps else ("normal",)
                if step[0] == "status":
                    self.send_error(step[1])
                    return
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                match = _RANGE.match(self.headers.get("Range") or "")
                if match and step[0] != "no-range":
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                    self.send_header("Accept-Ranges", "bytes")
                rest = body[start:]
                if step[0] == "trailing":
                    rest += b"\0" * step[1]
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(rest)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self._send(rest, step)

            def _send(self, rest: bytes, step: tuple) -> None:
                if step[0] == "truncate":
                    self.wfile.write(rest[: step[1]])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if step[0] == "stall":
                    self.wfile.write(rest[: step[1]])
                    self.wfile.flush()
                    server.release.wait(step[2])
                    self.close_connection = True
                    return
                if step[0] == "slow":
                    for offset in range(0, len(rest), step[1]):
                        self.wfile.write(rest[offset : offset + step[1]])
                        self.wfile.flush()
                        if server.release.wait(step[2]):
                            return
                    return
                self.wfile.write(rest)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.base_url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def file_server(tls_certificate) -> Iterator[FileServer]:
    with FileServer(tls_certificate) as server:
        yield server
    time.sleep(0)  # let handler threads see the release
