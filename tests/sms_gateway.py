"""A real HTTP endpoint standing in for the SMS gateway in tests.

Records every POST body and its headers (names lower-cased) as one JSON line in the log
file and answers 200; GET /health answers
200 so the test runner knows it is up. Usage: sms_gateway.py PORT LOGFILE
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, log_path = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            record = {"path": self.path, "body": json.loads(body)}
            record["headers"] = {k.lower(): v for k, v in self.headers.items()}
            status = 200
        except ValueError:
            record = {"path": self.path, "invalid": body.decode("utf-8", "replace")}
            status = 400
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
