#!/usr/bin/env python3
"""Experiment analysis at scale against a running `vexil serve` (bench/analysis.sh).

Sets up an experiment with a conversion, a sum and a count metric, activates it, then sends
UNITS exposures (half per variant) and EVENTS product events spread over those units through
POST /batch, and times GET /api/v1/flags/{key}/results: the first answer, and a second one.

Usage: analysis.py BASE_URL ADMIN_KEY PID UNITS EVENTS
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

BASE, ADMIN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
UNITS, EVENTS = int(sys.argv[4]), int(sys.argv[5])
HOST = urllib.parse.urlparse(BASE)


def call(method, path, body=None, headers=None, timeout=600):
    conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    conn.close()
    return out


def admin(method, path, body=None, version=None):
    h = {"Authorization": f"Bearer {ADMIN}"}
    if version is not None:
        h["If-Match"] = f'"{version}"'
    status, headers, data = call(method, path, json.dumps(body).encode() if body is not None else None, h)
    assert status in (200, 201), (path, status, data)
    return json.loads(data), headers


def rss():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return 0


project, _ = admin("POST", "/api/v1/projects", {"name": f"Analysis {time.time()}"})
p = project["key"]
key = project["api_key"]


def batch(events):
    body = json.dumps({"api_key": key, "events": events}).encode()
    while True:
        status, headers, _ = call("POST", "/batch", body)
        if status in (429, 503):
            time.sleep(float(headers.get("Retry-After", "1")))
            continue
        if status == 400 and b"Invalid API key" in _:
            time.sleep(0.05)
            continue
        assert status == 200, status
        return


batch([{"event_type": t, "user_id": "seed", "event_properties": {"amount": 1}} for t in ("Purchase", "Page View")])
for m in ({"name": "Purchase", "type": "conversion", "event_type": "Purchase"},
          {"name": "Revenue", "type": "sum", "event_type": "Purchase", "property": "amount"},
          {"name": "Page views", "type": "count", "event_type": "Page View"}):
    admin("POST", f"/api/v1/projects/{p}/metrics", m)
flag, headers = admin("POST", "/api/v1/flags", {
    "project": p, "name": "Checkout", "key": "checkout", "type": "experiment",
    "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}},
    "experiment": {"primary_metric": "purchase", "secondary_metrics": ["revenue", "page-views"]}})
active, _ = admin("POST", "/api/v1/flags/checkout/activate", version=flag["version"])
start = active["experiment"]["start"]

# Exposures and events, all inside the window (the window's end is the request's "now").
sent = time.time()
todo = []
for u in range(UNITS):
    variant = ("control", "treatment")[u % 2]
    todo.append({"event_type": "$exposure", "user_id": f"user-{u}", "time": start + 1 + u % 1000,
                 "event_properties": {"flag_key": "checkout", "variant": variant}})
for e in range(EVENTS):
    u = (e * 7919) % UNITS
    kind = "Purchase" if e % 5 == 0 else "Page View"
    todo.append({"event_type": kind, "user_id": f"user-{u}", "time": start + 2000 + e % 5000,
                 "insert_id": f"e-{e}", "event_properties": {"amount": e % 50}})
chunks = [todo[i:i + 1000] for i in range(0, len(todo), 1000)]
lock = threading.Lock()


def worker():
    while True:
        with lock:
            if not chunks:
                return
            chunk = chunks.pop()
        batch(chunk)


threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ingest = time.time() - sent
time.sleep(max(0.0, (start + 7100) / 1000 - time.time()))

timings = []
for _ in range(2):
    t0 = time.time()
    status, _, data = call("GET", "/api/v1/flags/checkout/results", headers={"Authorization": f"Bearer {ADMIN}"})
    timings.append(time.time() - t0)
    assert status == 200, (status, data[:300])
results = json.loads(data)
units = [v["units"] for v in results["variants"]]
print(f"{UNITS:,} exposed units, {EVENTS:,} events: ingested in {ingest:.1f} s; "
      f"results in {timings[0]:.2f} s, then {timings[1]:.2f} s; units {units}; RSS peak {rss()} MiB")
print("summary:", results["summary"])
