#!/usr/bin/env python3
"""The endpoint moto's Step Functions interpreter calls: Lambda Invoke to the real functions.

moto (5.x) executes a state machine when its config says so; its `lambda:invoke` and
`sns:publish` tasks call the AWS API at `localhost:$MOTO_PORT`, where MOTO_PORT is the moto
server process's environment variable. The world starts moto with MOTO_PORT set to this
router, which sends

  POST /2015-03-31/functions/<name or ARN>/invocations  ->  `cargo lambda watch` (the
      functions' own binaries), the function named by the ARN's `function:<name>` part;
  everything else                                        ->  moto itself.

Every client comes here too (the world's AWS_ENDPOINT_URL), so the router is where each
region's control plane lives and dies. moto keeps every service's state per region already
(its backends are keyed by account and region, nothing is shared between regions); the router
adds what moto lacks for a regional outage:

  a region can be lost   every request signed for it (the SigV4 credential scope names the
                         region) is dropped without an answer, as a dark region's endpoints
                         do; Lambda Invoke too
  a global table         writes to the DynamoDB table named by --global-table are replicated
                         to the same table in the other regions after --replication-delay-ms,
                         last writer wins, as DynamoDB global tables do (asynchronously: a
                         conditional write is only consistent within its own region); a write
                         not yet replicated when its region is lost is lost with it, and a lost
                         region's replica catches up when it comes back

  POST   /_router/regions/<region>/down   lose a region (its AWS stops answering)
  POST   /_router/regions/<region>/up     bring it back (its pending replication is applied)
  POST   /_router/replication/pause|resume   hold the global table's replication back (a drill
                                         of two regions deciding at once), then let it go
  GET    /_router/regions                 {"down": [...], "replication": {...}}

For drills, the router can make the Lambda service fail an invocation, the way AWS does on a
bad day (HTTP 500, `ServiceException`), before it reaches the function:

  POST   /_router/faults       {"function": "data-validator", "match": {"command":
                                "validate-segment", "segment": 3}, "times": 1}
  DELETE /_router/faults
  GET    /_router/invocations  every invocation routed: function, payload, status, ms, fault
  DELETE /_router/invocations

Usage: aws_router.py --port P --moto-port M --lambda-port L [--global-table T]
"""

import argparse
import http.client
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"]
SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
DDB = "DynamoDB_20120810."
DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}

INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}

lock = threading.RLock()
faults = []        # {"function", "match", "times", "status", "error", "message"}
invocations = []   # what was routed, in order
down = set()       # regions lost: nothing signed for them is answered


def connect(port, timeout=900):
    """A connection to a local server, TCP_NODELAY: a request's headers and body go out in
    two writes, and Nagle's algorithm with the server's delayed ACK would hold the second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def scope_of(headers, query=""):
    """(access key, region) from the SigV4 credential scope, header or presigned query."""
    m = SCOPE.search(headers.get("Authorization") or "") or SCOPE.search(
        urllib.parse.unquote(query).replace("X-Amz-Credential=", "Credential="))
    return (m.group(1), m.group(2)) if m else (None, None)


class Replicator:
    """A DynamoDB global table's replication: asynchronous, last writer wins.

    After a write is acknowledged in one region, its items are read back from that region
    (consistently) after `delay` and written as they are then to every other region;
    several writes of one item within the delay replicate once. Replicated writes go to
    moto directly and are not replicated again. A region that is down keeps what it was
    sent in `pending` and receives it when it comes back; a source that is down when its
    writes are due loses them (never replicated: lost with the region)."""

    def __init__(self, moto_port, table, keys, delay_ms):
        self.moto_port, self.table, self.keys, self.delay = moto_port, table, keys, delay_ms / 1000
        self.cv = threading.Condition()
        self.due = {}       # (source region, key json) -> (due time, access key)
        self.pending = {}   # target region -> {key json: item or None}
        self.stats = {"writes_seen": 0, "replicated": 0, "lost_with_source": 0, "errors": 0}
        self.paused = False  # a drill holds replication back: each region sees only its own writes
        threading.Thread(target=self.run, daemon=True).start()

    def note(self, region, akid, op, request):
        keys = []
        try:
            doc = json.loads(request)
        except ValueError:
            return
        def key_of(table, key=None, item=None):
            if table != self.table:
                return
            src = key if key is not None else item
            if src and all(k in src for k in self.keys):
                keys.append(json.dumps({k: src[k] for k in self.keys}, sort_keys=True))
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            key_of(doc.get("TableName"), doc.get("Key"), doc.get("Item"))
        elif op == "TransactWriteItems":
            for t in doc.get("TransactItems", []):
                for kind in ("Put", "Update", "Delete"):
                    if kind in t:
                        key_of(t[kind].get("TableName"), t[kind].get("Key"), t[kind].get("Item"))
        elif op == "BatchWriteItem":
            for table, reqs in (doc.get("RequestItems") or {}).items():
                for r in reqs:
                    if "PutRequest" in r:
                        key_of(table, item=r["PutRequest"].get("Item"))
                    if "DeleteRequest" in r:
                        key_of(table, key=r["DeleteRequest"].get("Key"))
        if not keys:
            return
        with self.cv:
            self.stats["writes_seen"] += len(keys)
            for k in keys:
                self.due.setdefault((region, k), (time.time() + self.delay, akid))
            self.cv.notify()

    def call(self, region, akid, op, body):
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": DDB + op,
                   "Authorization": f"AWS4-HMAC-SHA256 Credential={akid or 'replicator'}/20260101/{region}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"}
        conn = connect(self.moto_port, timeout=30)
        try:
            conn.request("POST", "/", body=json.dumps(body), headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise OSError(f"{op} in {region}: HTTP {resp.status} {data[:200]!r}")
            return json.loads(data or b"{}")
        finally:
            conn.close()

    def apply(self, target, akid, key, item):
        if item is None:
            self.call(target, akid, "DeleteItem", {"TableName": self.table, "Key": json.loads(key)})
        else:
            self.call(target, akid, "PutItem", {"TableName": self.table, "Item": item})

    def run(self):
        while True:
            with self.cv:
                now = time.time()
                if self.paused:
                    self.cv.wait(0.05)
                    continue
                ready = [(k, v[1]) for k, v in self.due.items() if v[0] <= now]
                for k, _ in ready:
                    del self.due[k]
                if not ready:
                    nxt = min((v[0] for v in self.due.values()), default=now + 1)
                    self.cv.wait(max(0.01, nxt - now))
                    continue
            for (source, key), akid in ready:
                with lock:
                    source_lost = source in down
                if source_lost:
                    with lock:
                        self.stats["lost_with_source"] += 1
                    continue
                try:
                    got = self.call(source, akid, "GetItem",
                                    {"TableName": self.table, "Key": json.loads(key), "ConsistentRead": True})
                    item = got.get("Item")
                    for target in REGIONS:
                        if target == source:
                            continue
                        # Decided under the lock that `up` takes before it starts the
                        # region's catch-up: an item is either applied now or pending
                        # when the catch-up takes the pending items, never left behind.
                        with lock:
                            held = target in down
                            if held:
                                self.pending.setdefault(target, {})[key] = (item, akid, source)
                        if not held:
                            self.apply(target, akid, key, item)
                    with lock:
                        self.stats["replicated"] += 1
                except (OSError, ValueError) as e:
                    with lock:
                        self.stats["errors"] += 1
                    print(f"replication of {key} from {source} failed: {e}", flush=True)

    def catch_up(self, region):
        with lock:
            items = self.pending.pop(region, {})
        for key, (item, akid, source) in items.items():
            try:
                # The item as its source holds it now (a newer version may have been
                # applied here directly since it was held back); as held if the source is down.
                with lock:
                    source_up = source not in down
                if source_up:
                    got = self.call(source, akid, "GetItem",
                                    {"TableName": self.table, "Key": json.loads(key), "ConsistentRead": True})
                    item = got.get("Item")
                self.apply(region, akid, key, item)
            except (OSError, ValueError) as e:
                print(f"catching {region} up on {key} failed: {e}", flush=True)

    def describe(self):
        with self.cv:
            due = len(self.due)
        with lock:
            return {"table": self.table, "delay_ms": int(self.delay * 1000), "due": due, "paused": self.paused,
                    "pending": {r: len(p) for r, p in self.pending.items()}, **self.stats}


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
        akid, region = scope_of(self.headers, self.path.partition("?")[2])
        if region in down:
            # A lost region: no answer at all. The client sees its connection closed.
            self.close_connection = True
            return
        m = INVOKE.match(path) if self.command == "POST" else None
        if m:
            return self.invoke(m.group(1), data)
        status = self.forward(self.server.moto_port, self.path, data)
        target = self.headers.get("X-Amz-Target") or ""
        rep = self.server.replicator
        if rep and status == 200 and target.startswith(DDB) and target[len(DDB):] in DDB_WRITES:
            rep.note(region or "us-east-1", akid, target[len(DDB):], data)

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
            if path == "/_router/regions" and self.command == "GET":
                rep = self.server.replicator
                return self.reply_json(200, {"down": sorted(down), "replication": rep.describe() if rep else None})
            m = re.match(r"^/_router/replication/(pause|resume)$", path)
            if m and self.command == "POST":
                rep = self.server.replicator
                if rep is None:
                    return self.reply_json(400, {"message": "no global table is replicated (--global-table)"})
                with rep.cv:
                    rep.paused = m.group(1) == "pause"
                    rep.cv.notify()
                print(f"replication: {m.group(1)}", flush=True)
                return self.reply_json(200, {"paused": rep.paused})
            m = re.match(r"^/_router/regions/([a-z0-9-]+)/(down|up)$", path)
            if m and self.command == "POST":
                region, state = m.groups()
                if region not in REGIONS:
                    return self.reply_json(400, {"message": f"unknown region {region!r}; the regions are {', '.join(REGIONS)}"})
                if state == "down":
                    down.add(region)
                else:
                    down.discard(region)
                    if self.server.replicator:
                        threading.Thread(target=self.server.replicator.catch_up, args=(region,), daemon=True).start()
                print(f"region {region}: {state}", flush=True)
                return self.reply_json(200, {"down": sorted(down)})
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

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every call (measured: 50 ms a call, 3.5 ms
        # straight to moto).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self):
        super().finish()
        conn = getattr(self, "_moto", None)
        if conn is not None:
            conn.close()

    def moto_connection(self, port, fresh=False):
        """This client connection's own keep-alive connection to moto: a connection per
        request would cycle through the ephemeral ports (and cost a handshake each)."""
        conn = getattr(self, "_moto", None)
        if fresh or conn is None:
            if conn is not None:
                conn.close()
            self._moto = None
            conn = self._moto = connect(port)
        return conn

    def forward(self, port, path, data, invoke=False):
        reuse = not invoke
        conn = None
        try:
            conn = self.moto_connection(port) if reuse else connect(port)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            try:
                conn.request(self.command, path, body=data or None, headers=headers)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reuse:
                    raise
                # moto closed the kept-alive connection: once more on a new one.
                conn = self.moto_connection(port, fresh=True)
                conn.request(self.command, path, body=data or None, headers=headers)
                resp = conn.getresponse()
            body = resp.read()
            if resp.will_close and reuse:
                self.moto_connection(port, fresh=True)
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
            if reuse:
                self._moto = None
            what = "cargo lambda watch" if invoke else "moto"
            self.reply_json(502 if not invoke else 500,
                            {"Type": "Service", "message": f"the router could not reach {what} on port {port}: {e}"},
                            [("x-amzn-ErrorType", "ServiceException")])
            return 500
        finally:
            if not reuse and conn is not None:
                conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--moto-port", type=int, required=True)
    p.add_argument("--lambda-port", type=int, required=True)
    p.add_argument("--global-table", help="the DynamoDB table replicated between the regions")
    p.add_argument("--global-table-keys", default="pk,sk")
    p.add_argument("--replication-delay-ms", type=int, default=500)
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Router)
    server.daemon_threads = True
    server.moto_port = a.moto_port
    server.lambda_port = a.lambda_port
    server.replicator = (Replicator(a.moto_port, a.global_table, a.global_table_keys.split(","), a.replication_delay_ms)
                         if a.global_table else None)
    print(f"aws router on 127.0.0.1:{a.port}: Lambda Invoke -> 127.0.0.1:{a.lambda_port}, the rest -> moto 127.0.0.1:{a.moto_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
