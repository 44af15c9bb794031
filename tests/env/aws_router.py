#!/usr/bin/env python3
"""The endpoint moto's Step Functions interpreter calls: Lambda Invoke to the real functions.

moto (5.x) executes a state machine when its config says so; its `lambda:invoke` and
`sns:publish` tasks call the AWS API at `localhost:$MOTO_PORT`, where MOTO_PORT is the moto
server process's environment variable. The world starts moto with MOTO_PORT set to this
router, which sends

  POST /2015-03-31/functions/<name or ARN>/invocations  ->  `cargo lambda watch` (the
      functions' own binaries), the function named by the ARN's `function:<name>` part;
  everything else                                        ->  moto itself.

Clients (the tests, the functions) talk to moto directly; only the interpreter comes here.

For drills, the router can make the Lambda service fail an invocation, the way AWS does on a
bad day (HTTP 500, `ServiceException`), before it reaches the function:

  POST   /_router/faults       {"function": "data-validator", "match": {"command":
                                "validate-segment", "segment": 3}, "times": 1}
  DELETE /_router/faults
  GET    /_router/invocations  every invocation routed: function, payload, status, ms, fault
  DELETE /_router/invocations

Usage: aws_router.py --port P --moto-port M --lambda-port L
"""

import argparse
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}

lock = threading.Lock()
faults = []        # {"function", "match", "times", "status", "error", "message"}
invocations = []   # what was routed, in order


def function_name(raw):
    """`data-validator`, `arn:aws:lambda:<region>:<account>:function:data-validator[:qualifier]`."""
    name = urllib.parse.unquote(raw)
    if name.startswith("arn:"):
        parts = name.split(":")
        if len(parts) < 7 or parts[5] != "function":
            return None
        return parts[6]
    return name.split(":")[0]


def matches(fault, fn, payload):
    if fault["function"] != fn or fault["times"] <= 0:
        return False
    if not isinstance(payload, dict):
        return not fault["match"]
    return all(payload.get(k) == v for k, v in fault["match"].items())


class Router(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cutover-aws-router"

    def log_message(self, fmt, *args):  # quiet: the world's logs are for failures
        pass

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body, headers=()):
        self.send_response(status)
        headers = list(headers)
        if not any(k.lower() == "x-amzn-requestid" for k, _ in headers):
            # Lambda's every answer has one; moto's interpreter reads it when it reports an error.
            headers.append(("x-amzn-RequestId", str(uuid.uuid4())))
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status, value, headers=()):
        self.reply(status, json.dumps(value).encode(), [("Content-Type", "application/json"), *headers])

    def handle_any(self):
        path = self.path.split("?")[0]
        data = self.body()
        if path.startswith("/_router/"):
            return self.admin(path, data)
        m = INVOKE.match(path) if self.command == "POST" else None
        if m:
            return self.invoke(m.group(1), data)
        return self.forward(self.server.moto_port, self.path, data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

    def admin(self, path, data):
        with lock:
            if path == "/_router/faults" and self.command == "POST":
                try:
                    f = json.loads(data)
                    fault = {"function": str(f["function"]), "match": dict(f.get("match") or {}),
                             "times": int(f.get("times", 1)), "status": int(f.get("status", 500)),
                             "error": str(f.get("error", "ServiceException")),
                             "message": str(f.get("message", "the router failed this invocation (a drill)"))}
                except (ValueError, KeyError, TypeError) as e:
                    return self.reply_json(400, {"message": f"a fault needs \"function\", and may have \"match\", \"times\", \"status\", \"error\", \"message\": {e}"})
                faults.append(fault)
                return self.reply_json(200, fault)
            if path == "/_router/faults" and self.command == "DELETE":
                faults.clear()
                return self.reply_json(200, {})
            if path == "/_router/invocations" and self.command == "GET":
                return self.reply_json(200, invocations)
            if path == "/_router/invocations" and self.command == "DELETE":
                invocations.clear()
                return self.reply_json(200, {})
            if path == "/_router/health":
                return self.reply_json(200, {"lambda_port": self.server.lambda_port, "moto_port": self.server.moto_port})
        return self.reply_json(404, {"message": f"no such router path: {self.command} {path}"})

    def invoke(self, raw_name, data):
        fn = function_name(raw_name)
        started = time.time()
        try:
            payload = json.loads(data) if data else None
        except ValueError:
            payload = None
        record = {"function": fn, "payload": payload, "at_ms": int(started * 1000)}
        if fn is None:
            record.update(status=400, ms=0, fault=None)
            with lock:
                invocations.append(record)
            return self.reply_json(400, {"Type": "User", "message": f"not a function name or ARN: {raw_name}"},
                                   [("x-amzn-ErrorType", "InvalidParameterValueException")])
        with lock:
            fault = next((f for f in faults if matches(f, fn, payload)), None)
            if fault:
                fault["times"] -= 1
        if fault:
            record.update(status=fault["status"], ms=0, fault=fault["error"])
            with lock:
                invocations.append(record)
            return self.reply_json(fault["status"], {"Type": "Service", "message": fault["message"]},
                                   [("x-amzn-ErrorType", fault["error"])])
        status = self.forward(self.server.lambda_port, f"/2015-03-31/functions/{fn}/invocations", data, invoke=True)
        record.update(status=status, ms=int((time.time() - started) * 1000), fault=None)
        with lock:
            invocations.append(record)

    def forward(self, port, path, data, invoke=False):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, path, body=data or None, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
            if invoke and resp.status == 200 and not any(k.lower() == "x-amz-function-error" for k, _ in headers):
                # A handler's error comes back as {"errorType", "errorMessage"}; Lambda marks it.
                try:
                    doc = json.loads(body)
                    if isinstance(doc, dict) and "errorType" in doc and "errorMessage" in doc:
                        headers.append(("X-Amz-Function-Error", "Unhandled"))
                except ValueError:
                    pass
            self.reply(resp.status, body, headers)
            return resp.status
        except OSError as e:
            what = "cargo lambda watch" if invoke else "moto"
            self.reply_json(502 if not invoke else 500,
                            {"Type": "Service", "message": f"the router could not reach {what} on port {port}: {e}"},
                            [("x-amzn-ErrorType", "ServiceException")])
            return 500
        finally:
            conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--moto-port", type=int, required=True)
    p.add_argument("--lambda-port", type=int, required=True)
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Router)
    server.daemon_threads = True
    server.moto_port = a.moto_port
    server.lambda_port = a.lambda_port
    print(f"aws router on 127.0.0.1:{a.port}: Lambda Invoke -> 127.0.0.1:{a.lambda_port}, the rest -> moto 127.0.0.1:{a.moto_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
