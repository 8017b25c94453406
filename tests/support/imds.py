"""A stand-in for IMDSv2, run as a script: ``python3 imds.py META_JSON ADDRESS PORT``.

A token from ``PUT /latest/api/token`` (TTL 1-21600 s), then ``GET /latest/meta-data/KEY``
with it answers META_JSON[KEY] (a string, or JSON for a dict); no token, 401 (an instance
with HttpTokens=required). The boot tests run it inside the machine on 169.254.169.254:80;
the S3 fetcher's tests run it on 127.0.0.1 with a role's credentials under
``iam/security-credentials/``, where botocore reads them
(``AWS_EC2_METADATA_SERVICE_ENDPOINT``). Standard library only: the boot machine has no
packages of ours.
"""

import json
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKENS: dict[str, float] = {}


def make_handler(meta: dict) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code, body=b"", headers=()):
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            if self.path != "/latest/api/token":
                return self._send(404)
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self._send(400)
            token = secrets.token_urlsafe(32)
            TOKENS[token] = time.monotonic() + int(ttl)
            self._send(200, token.encode(), [("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

        def do_GET(self):
            token = self.headers.get("X-aws-ec2-metadata-token", "")
            if TOKENS.get(token, 0) < time.monotonic():
                return self._send(401)  # IMDSv2 only (HttpTokens=required)
            prefix = "/latest/meta-data/"
            value = meta.get(self.path[len(prefix) :]) if self.path.startswith(prefix) else None
            if value is None:
                return self._send(404)
            body = json.dumps(value) if isinstance(value, dict) else str(value)
            self._send(200, body.encode())

        def log_message(self, *args):
            print("imds:", self.command, self.path, file=sys.stderr, flush=True)

    return Handler


if __name__ == "__main__":
    meta_file, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(meta_file) as source:
        handler = make_handler(json.load(source))
    ThreadingHTTPServer((address, port), handler).serve_forever()
