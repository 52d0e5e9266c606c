#!/usr/bin/env python3
"""A JSON endpoint for the http source's tests, on Python's standard http.server.

GET /doc serves the file DIR/doc.json as it is on disk at each request (the test rewrites
it), with an ETag (a hash of the content) and a Last-Modified (the file's mtime), and
answers conditional requests as RFC 9110 says: If-None-Match first, If-Modified-Since
only without it. GET /stats answers the counts of each status sent for /doc and the last
Authorization header seen. With --require "Name: value", /doc answers 401 to requests
without that exact header.

Usage: json_server.py PORT DIR [--require "Name: value"]; prints "PORT n" once listening.
"""

import email.utils
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
LAST = {"authorization": None}
LOCK = threading.Lock()


def count(status):
    with LOCK:
        COUNTS[str(status)] = COUNTS.get(str(status), 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                stats = dict(COUNTS)
                stats["last_authorization"] = LAST["authorization"]
            self.send(200, json.dumps(stats).encode(), [("Content-Type", "application/json")])
            return
        if self.path != "/doc":
            self.send(404)
            return
        with LOCK:
            LAST["authorization"] = self.headers.get("Authorization")
        if REQUIRE is not None:
            name, value = REQUIRE
            if self.headers.get(name) != value:
                count(401)
                self.send(401, b'{"error": "unauthorized"}', [("Content-Type", "application/json")])
                return
        path = os.path.join(DIR, "doc.json")
        with open(path, "rb") as f:
            body = f.read()
        mtime = int(os.stat(path).st_mtime)
        etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
        last_modified = email.utils.formatdate(mtime, usegmt=True)
        validators = [("ETag", etag), ("Last-Modified", last_modified)]
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if inm is not None:
            unchanged = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        elif ims is not None:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
                unchanged = mtime <= since
            except (TypeError, ValueError):
                unchanged = False
        else:
            unchanged = False
        if unchanged:
            count(304)
            self.send(304, b"", validators)
            return
        count(200)
        self.send(200, body, [("Content-Type", "application/json")] + validators)


if __name__ == "__main__":
    PORT = int(sys.argv[1])
    DIR = sys.argv[2]
    REQUIRE = None
    if len(sys.argv) > 4 and sys.argv[3] == "--require":
        name, value = sys.argv[4].split(":", 1)
        REQUIRE = (name.strip(), value.strip())
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()
