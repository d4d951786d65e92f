"""Real HTTP endpoints standing in for the chat robots, a bureau's webhook receiver and a
provider-style SMS API in tests. Python standard library only.

Each endpoint checks what the vendor's documented API checks and answers as the vendor does:

- WeCom group robot, POST /wecom/...?key=KEY
  (https://developer.work.weixin.qq.com/document/path/91770): the key must be WECOM_KEY
  (else errcode 93000), the body {"msgtype":"markdown","markdown":{"content":...}} (else
  40008/40058), the content at most 4096 bytes of UTF-8 (else 40058). Answer
  {"errcode":0,"errmsg":"ok"}.
- DingTalk custom robot, POST /dingtalk/...?access_token=TOKEN&timestamp=MS&sign=SIGN
  (https://open.dingtalk.com/document/robots/customize-robot-security-settings): the token
  must be DINGTALK_TOKEN (else 300001), the timestamp within one hour of now and the sign
  equal to base64(HMAC-SHA256(secret, timestamp + "\\n" + secret)) (else 310000), the text
  holding the keyword DINGTALK_KEYWORD (else 310000), the body
  {"msgtype":"markdown","markdown":{"title","text"}} (else 40035).
- Webhook receiver, POST /hook/...: X-Riverwatch-Timestamp within 5 minutes, and
  X-Riverwatch-Signature equal to "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." +
  body)) over the exact bytes received (else HTTP 401), Idempotency-Key present (else 400),
  JSON with the documented fields (else 400). Answer 200 {"ok": true}.
- Provider-style SMS API, POST /sms/...: JSON with "to" and "text"; answer
  {"Code": "OK", "Message": "OK"}.

Nothing is deduplicated: every accepted delivery is one JSON line in LOGFILE
({"vendor", "path", "accepted": true, "body", "headers"}); refused attempts are logged too,
with "accepted": false and the answer. POST /control {"path": P, "status": S, "answer": {...},
"times": N} makes the next N requests to path P (without the query) get that status and JSON
answer instead (N absent: until {"path": P, "clear": true}); GET /health answers 200.

Usage: robots.py PORT LOGFILE WECOM_KEY DINGTALK_TOKEN DINGTALK_SECRET DINGTALK_KEYWORD WEBHOOK_SECRET
"""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

(port, log_path, wecom_key, ding_token, ding_secret, ding_keyword, hook_secret) = sys.argv[1:8]
port = int(port)
lock = threading.Lock()
faults = {}  # path -> {"status", "answer", "times" (None: until cleared)}


def log(record):
    with lock, open(log_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def take_fault(path):
    with lock:
        fault = faults.get(path)
        if fault is None:
            return None
        if fault["times"] is not None:
            fault["times"] -= 1
            if fault["times"] <= 0:
                del faults[path]
        return fault


def wecom(query, body):
    if query.get("key", [""])[0] != wecom_key:
        return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
    if not isinstance(body, dict) or body.get("msgtype") != "markdown":
        return 200, {"errcode": 40008, "errmsg": "invalid message type"}
    content = (body.get("markdown") or {}).get("content")
    if not isinstance(content, str) or not content:
        return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length or empty"}
    if len(content.encode("utf-8")) > 4096:
        return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
    return 200, {"errcode": 0, "errmsg": "ok"}


def dingtalk(query, body):
    if query.get("access_token", [""])[0] != ding_token:
        return 200, {"errcode": 300001, "errmsg": "token is not exist"}
    try:
        ts = int(query.get("timestamp", ["0"])[0])
    except ValueError:
        ts = 0
    if abs(time.time() * 1000 - ts) > 3600 * 1000:
        return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
    mac = hmac.new(ding_secret.encode(), f"{ts}\n{ding_secret}".encode(), hashlib.sha256)
    if query.get("sign", [""])[0] != base64.b64encode(mac.digest()).decode():
        return 200, {"errcode": 310000, "errmsg": "sign not match"}
    md = body.get("markdown") if isinstance(body, dict) else None
    if not isinstance(md, dict) or body.get("msgtype") != "markdown":
        return 200, {"errcode": 40035, "errmsg": "invalid parameter: msgtype"}
    title, text = md.get("title"), md.get("text")
    if not isinstance(title, str) or not title or not isinstance(text, str) or not text:
        return 200, {"errcode": 40035, "errmsg": "invalid parameter: markdown"}
    if ding_keyword not in title + text:
        return 200, {"errcode": 310000, "errmsg": "keywords not in content"}
    return 200, {"errcode": 0, "errmsg": "ok"}


HOOK_FIELDS = ["version", "key", "alert_id", "state", "level", "station", "bureau",
               "bureau_name", "subject", "text"]


def hook(headers, raw):
    ts = headers.get("x-riverwatch-timestamp", "")
    try:
        fresh = abs(time.time() - int(ts)) <= 300
    except ValueError:
        fresh = False
    if not fresh:
        return 401, {"error": "stale or missing timestamp"}
    expected = "sha256=" + hmac.new(hook_secret.encode(), ts.encode() + b"." + raw,
                                    hashlib.sha256).hexdigest()
    if not hmac.compare_digest(headers.get("x-riverwatch-signature", ""), expected):
        return 401, {"error": "bad signature"}
    if not headers.get("idempotency-key"):
        return 400, {"error": "no Idempotency-Key"}
    body = json.loads(raw)
    if not isinstance(body, dict) or any(f not in body for f in HOOK_FIELDS):
        return 400, {"error": "missing fields"}
    return 200, {"ok": True}


def sms(body):
    if not isinstance(body, dict) or not body.get("to") or not body.get("text"):
        return 200, {"Code": "isv.INVALID_PARAMETERS", "Message": "to and text required"}
    return 200, {"Code": "OK", "Message": "OK"}


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, obj):
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if path == "/control":
            c = json.loads(raw)
            with lock:
                if c.get("clear"):
                    faults.pop(c["path"], None)
                else:
                    faults[c["path"]] = {"status": c.get("status", 200),
                                         "answer": c.get("answer", {}),
                                         "times": c.get("times")}
            return self.answer(200, {"ok": True})
        headers = {k.lower(): v for k, v in self.headers.items()}
        vendor = path.split("/")[1] if path.count("/") >= 1 else ""
        fault = take_fault(path)
        if fault is not None:
            log({"vendor": vendor, "path": path, "accepted": False, "status": fault["status"],
                 "answer": fault["answer"], "injected": True})
            return self.answer(fault["status"], fault["answer"])
        try:
            body = json.loads(raw)
        except ValueError:
            log({"vendor": vendor, "path": path, "accepted": False, "status": 400,
                 "invalid": raw.decode("utf-8", "replace")})
            return self.answer(400, {"errcode": 40035, "errmsg": "invalid json"})
        if vendor == "wecom":
            status, answer = wecom(query, body)
        elif vendor == "dingtalk":
            status, answer = dingtalk(query, body)
        elif vendor == "hook":
            status, answer = hook(headers, raw)
        elif vendor == "sms":
            status, answer = sms(body)
        else:
            status, answer = 404, {"error": "no such endpoint"}
        accepted = status == 200 and answer.get("errcode", 0) == 0 and answer.get("Code", "OK") == "OK"
        record = {"vendor": vendor, "path": path, "accepted": accepted, "body": body,
                  "headers": headers}
        if not accepted:
            record.update(status=status, answer=answer)
        log(record)
        self.answer(status, answer)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
