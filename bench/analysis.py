#!/usr/bin/env python3
"""Experiment analysis at scale against a running `vexil serve` (bench/analysis.sh).

An experiment with 5 metrics (a conversion, a filtered conversion, a sum, a count and a ratio)
whose analysis window opened DAYS days ago. UNITS units are exposed over those days (half per
variant) and EVENTS product events spread over them, all through POST /batch. Then it times
GET /api/v1/flags/{key}/results:

1. the first full analysis;
2. the same page again, nothing new (what the analysis kept);
3. after a day of new data (1/DAYS of the units and events again, timed in the last day).

Usage: analysis.py BASE_URL ADMIN_KEY PID UNITS EVENTS DAYS
"""

import http.client
import json
import sys
import multiprocessing
import time
import urllib.parse

BASE, ADMIN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
UNITS, EVENTS, DAYS = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
HOST = urllib.parse.urlparse(BASE)
DAY = 86_400_000
SENDERS = 4


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


def post(body):
    while True:
        status, headers, data = call("POST", "/batch", body)
        if status in (429, 503):
            time.sleep(float(headers.get("Retry-After", "1")))
            continue
        if status == 400 and b"Invalid API key" in data:
            time.sleep(0.05)
            continue
        assert status == 200, (status, data[:300])
        return


post(json.dumps({"api_key": key, "events": [
    {"event_type": t, "user_id": "seed", "event_properties": {"amount": 1, "plan": "pro"}}
    for t in ("Purchase", "Page View")]}).encode())
for m in ({"name": "Purchase", "type": "conversion", "event_type": "Purchase"},
          {"name": "Pro purchase", "type": "conversion", "event_type": "Purchase",
           "filters": [{"scope": "event", "property": "plan", "op": "is", "values": ["pro"]}]},
          {"name": "Revenue", "type": "sum", "event_type": "Purchase", "property": "amount"},
          {"name": "Page views", "type": "count", "event_type": "Page View"},
          {"name": "Orders", "type": "count", "event_type": "Purchase"},
          {"name": "Order value", "type": "ratio", "numerator": "revenue", "denominator": "orders"}):
    admin("POST", f"/api/v1/projects/{p}/metrics", m)
experiment = {"primary_metric": "purchase",
              "secondary_metrics": ["pro-purchase", "revenue", "page-views", "order-value"]}
flag, _ = admin("POST", "/api/v1/flags", {
    "project": p, "name": "Checkout", "key": "checkout", "type": "experiment",
    "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}},
    "experiment": experiment})
active, _ = admin("POST", "/api/v1/flags/checkout/activate", version=flag["version"])
now = int(time.time() * 1000)
start = now - DAYS * DAY
admin("PATCH", "/api/v1/flags/checkout", {"experiment": {**experiment, "start": start}},
      version=active["version"])


def exposure(u, t):
    variant = ("control", "treatment")[u % 2]
    return ('{"event_type":"$exposure","user_id":"user-%d","time":%d,'
            '"event_properties":{"flag_key":"checkout","variant":"%s"}}' % (u, t, variant))


def product_event(e, u, t):
    kind = "Purchase" if e % 5 == 0 else "Page View"
    plan = "pro" if e % 3 == 0 else "free"
    return ('{"event_type":"%s","user_id":"user-%d","time":%d,"insert_id":"e-%d",'
            '"event_properties":{"amount":%d,"plan":"%s"}}' % (kind, u, t, e, e % 50, plan))


def send(units, events, first_unit, first_event, span_start, span):
    """Exposes `units` units from `first_unit` and sends `events` events over them, timed in
    [span_start, span_start + span). Returns seconds."""
    # Rows come in time order, as live traffic does: units are exposed one after another over
    # the span, events spread evenly over it, each for a unit picked at random (an event
    # before its unit's exposure does not count, as in life).
    def unit_time(u):
        return span_start + (u - first_unit) * span // units

    # Chunks of 1,000 rows, built by the workers as they go: exposures first, then events.
    exposure_chunks = (units + 999) // 1000
    total = exposure_chunks + (events + 999) // 1000
    prefix = '{"api_key":"%s","events":[' % key

    def chunk(i):
        if i < exposure_chunks:
            lo = first_unit + i * 1000
            return [exposure(u, unit_time(u)) for u in range(lo, min(lo + 1000, first_unit + units))]
        lo = first_event + (i - exposure_chunks) * 1000
        rows = []
        for e in range(lo, min(lo + 1000, first_event + events)):
            u = first_unit + (e * 7919) % units
            rows.append(product_event(e, u, span_start + (e - first_event) * span // events))
        return rows

    def worker(k):
        for i in range(k, total, SENDERS):
            post((prefix + ",".join(chunk(i)) + "]}").encode())

    # Processes, not threads: building the bodies takes the client as much CPU as sending.
    sent = time.time()
    procs = [multiprocessing.Process(target=worker, args=(k,)) for k in range(SENDERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0, proc.exitcode
    return time.time() - sent


def results():
    t0 = time.time()
    status, _, data = call("GET", "/api/v1/flags/checkout/results",
                           headers={"Authorization": f"Bearer {ADMIN}"})
    elapsed = time.time() - t0
    assert status == 200, (status, data[:300])
    return elapsed, json.loads(data)


# The days before the last one, then the last day as "a day of new data".
old_units = UNITS - UNITS // DAYS
old_events = EVENTS - EVENTS // DAYS
ingest = send(old_units, old_events, 0, 0, start, (DAYS - 1) * DAY)
print(f"ingested {old_units:,} exposures and {old_events:,} events in {ingest:.1f} s "
      f"({(old_units + old_events) / ingest:,.0f} per second)", flush=True)
first, _ = results()
again, _ = results()
day_start = start + (DAYS - 1) * DAY
ingest = send(UNITS - old_units, EVENTS - old_events, old_units, old_events, day_start,
              int(time.time() * 1000) - day_start)
refresh, r = results()
units = [v["units"] for v in r["variants"]]
print(f"{UNITS:,} exposed units, {EVENTS:,} events over {DAYS} days, 5 metrics: "
      f"first analysis {first:.2f} s; page again {again * 1000:.0f} ms; "
      f"after a day of new data {refresh:.2f} s; units {units}; RSS peak {rss()} MiB")
print("summary:", r["summary"])
