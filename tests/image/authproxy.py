#!/usr/bin/env python3
"""A registry front that demands a bearer token, like Docker Hub.

authproxy.py PORT UPSTREAM_PORT LOG
Serves /token (anonymous: any scope gets the token) and forwards every other
GET to the registry on UPSTREAM_PORT when it carries that token; without it,
answers 401 with a WWW-Authenticate: Bearer challenge. LOG gets one line per
token issued.
"""
import http.server
import sys
import urllib.error
import urllib.request

PORT, UPSTREAM, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
TOKEN = "c292ZS10ZXN0LXRva2Vu"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/token?"):
            with open(LOG, "a") as fp:
                fp.write(self.path + "\n")
            return self.reply(200, ('{"token":"%s"}' % TOKEN).encode(),
                              [("Content-Type", "application/json")])
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            repo = self.path.split("/")[2:4] if self.path.startswith("/v2/") else []
            challenge = 'Bearer realm="http://127.0.0.1:%d/token",service="cove-test"' % PORT
            if len(repo) == 2:
                challenge += ',scope="repository:%s:pull"' % "/".join(repo)
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                              [("WWW-Authenticate", challenge)])
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (UPSTREAM, self.path))
        if self.headers.get("Accept"):
            req.add_header("Accept", self.headers["Accept"])
        try:
            with urllib.request.urlopen(req) as r:
                body, status, hdrs = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            body, status, hdrs = e.read(), e.code, e.headers
        keep = [(k, hdrs[k]) for k in ("Content-Type", "Docker-Content-Digest") if hdrs.get(k)]
        self.reply(status, body, keep)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
