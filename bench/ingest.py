#!/usr/bin/env python3
"""Sustained event ingestion through POST /batch (bench/ingest.sh), measured from outside.

Creates a project, then posts BATCHES batches of 1,000 product events each (Amplitude's analytics
SDKs send at most 1,000 per batch), each event with its own insert id, user and properties, from
CLIENTS concurrent clients with the project's API key, for the sustained rate of stored events.
Batches answered 429/503 are retried after Retry-After, as the SDKs do. Prints events/s, the
answers, and the server's peak RSS (from /proc/<pid>/status).

Usage: ingest.py BASE_URL ADMIN_KEY PID [BATCHES] [CLIENTS]
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

BASE, ADMIN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
BATCHES = int(sys.argv[4]) if len(sys.argv) > 4 else 300
CLIENTS = int(sys.argv[5]) if len(sys.argv) > 5 else 4
PER_BATCH = 1000
HOST = urllib.parse.urlparse(BASE)


def call(method, path, body, headers):
    conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=120)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    conn.close()
    return out


def admin(method, path, body):
    h = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    status, _, data = call(method, path, json.dumps(body).encode(), h)
    assert status in (200, 201), (status, data)
    return json.loads(data)


def rss():
    peak = now = 0
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                now = int(line.split()[1])
    return peak, now


project = admin("POST", "/api/v1/projects", {"name": f"Ingest {time.time()}"})
key = project["api_key"]
# The project's key works once its first snapshot is published.
for _ in range(200):
    status, _, _ = call("POST", "/batch", json.dumps({"api_key": key, "events": []}).encode(),
                        {"Content-Type": "application/json"})
    if status == 200:
        break
    time.sleep(0.05)


def batch(n):
    events = []
    for i in range(PER_BATCH):
        e = n * PER_BATCH + i
        events.append({
            "event_type": ("Purchase", "Page View", "Add To Cart", "Search")[e % 4],
            "user_id": f"user-{e % 50000}",
            "device_id": f"device-{e % 70000}",
            "time": 1_765_000_000_000 + e,
            "insert_id": f"ins-{e}",
            "event_properties": {"amount": e % 97, "currency": "EUR", "path": f"/p/{e % 300}"},
            "user_properties": {"plan": ("free", "pro")[e % 2]},
            "library": "amplitude-node/1.3.6",
        })
    return json.dumps({"api_key": key, "events": events}).encode()


bodies = [batch(n) for n in range(BATCHES)]
answers = {}
lock = threading.Lock()
next_batch = [0]


def client():
    while True:
        with lock:
            n = next_batch[0]
            next_batch[0] += 1
        if n >= BATCHES:
            return
        while True:
            status, headers, _ = call("POST", "/batch", bodies[n], {"Content-Type": "application/json"})
            with lock:
                answers[status] = answers.get(status, 0) + 1
            if status in (429, 503):
                time.sleep(float(headers.get("Retry-After", "1")))
                continue
            assert status == 200, status
            break


start = time.time()
threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - start
events = BATCHES * PER_BATCH
peak, now = rss()
print(f"{events} events in {BATCHES} batches from {CLIENTS} clients: {elapsed:.1f} s, "
      f"{events / elapsed:,.0f} events/s; answers {answers}; RSS peak {peak // 1024} MiB, now {now // 1024} MiB")
