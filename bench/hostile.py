#!/usr/bin/env python3
"""Hostile clients against a running `vexil serve`, measured from outside (bench/hostile.sh).

1. Event flood: 8 concurrent POST /batch with the public client key, 100,000 `$exposure`
   events each (~15.6 MiB), retried as Amplitude's clients do (after Retry-After on 429/503),
   while a management write is made in the middle. Reports the answers, the time until all
   800,000 events were stored, the server's peak RSS (sampled from /proc/<pid>/status every
   20 ms) and its RSS afterwards, and the management write's answer.
2. Slow clients: 1,100 connections that send half a request head and stop. Reports whether an
   ordinary request still gets through (and how long it took), then how many of the slow
   connections the server has closed after the header timeout.

Usage: hostile.py BASE_URL ADMIN_KEY PID
"""

import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse

BASE, ADMIN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
HOST = urllib.parse.urlparse(BASE)
ADDR = (HOST.hostname, HOST.port)


def call(method, path, body=None, headers=None, timeout=60, source=None):
    conn = http.client.HTTPConnection(*ADDR, timeout=timeout, source_address=source)
    h = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    h.update(headers or {})
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    conn.close()
    return out


def rss_kib(field="VmRSS"):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def setup():
    status, _, body = call("POST", "/api/v1/projects", {"name": "Hostile"})
    assert status in (200, 201), (status, body)
    project = json.loads(body)["key"]
    status, _, body = call(
        "POST", f"/api/v1/projects/{project}/deployments", {"label": "web", "type": "client"}
    )
    assert status in (200, 201), (status, body)
    return project, json.loads(body)["api_key"]


def flood(project, client_key):
    events = [
        {
            "event_type": "$exposure",
            "user_id": f"user-{i}",
            "device_id": f"device-{i}",
            "insert_id": f"{{n}}-{i}",
            "time": 1_700_000_000_000 + i,
            "event_properties": {"flag_key": "checkout", "variant": "treatment"},
        }
        for i in range(100_000)
    ]
    template = json.dumps({"api_key": client_key, "events": events})
    bodies = [template.replace("{n}", f"b{n}").encode() for n in range(8)]
    print(f"  batch size: {len(bodies[0]) / 2**20:.1f} MiB, 100,000 events")
    answers, done = [], []
    peak = [rss_kib()]
    base_rss = peak[0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib())
            time.sleep(0.02)

    def post(body):
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                status, headers, text = call("POST", "/batch", body, timeout=120)
            except OSError as e:
                answers.append(f"error {type(e).__name__}")
                time.sleep(1)
                continue
            answers.append(status)
            if status in (429, 503):
                time.sleep(float(headers.get("retry-after", headers.get("Retry-After", "1"))))
                continue
            done.append(status)
            return

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.time()
    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    time.sleep(1.0)
    m_started = time.time()
    status, _, text = call(
        "POST", "/api/v1/flags", {"project": project, "name": "During the flood"}
    )
    management = (status, time.time() - m_started)
    for t in threads:
        t.join()
    took = time.time() - started
    time.sleep(2)
    stop.set()
    sampler.join()
    counts = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    print(f"  answers: {dict(sorted(counts.items(), key=str))}; stored batches: {done.count(200)}/8 in {took:.1f} s")
    print(f"  management write during the flood: {management[0]} in {management[1] * 1000:.0f} ms")
    print(
        f"  RSS before {base_rss / 1024:.0f} MiB, peak {peak[0] / 1024:.0f} MiB "
        f"(VmHWM {rss_kib('VmHWM') / 1024:.0f} MiB), after {rss_kib() / 1024:.0f} MiB"
    )


def slowloris(n=1100):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(ADDR)
            s.sendall(b"GET /api/v1/projects HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        except OSError:
            pass
        socks.append(s)
    started = time.time()
    try:
        # From another loopback address: another client than the attacker.
        status, _, _ = call("GET", "/healthz", timeout=10, source=("127.0.0.2", 0))
        outcome = f"{status} in {(time.time() - started) * 1000:.0f} ms"
    except OSError as e:
        outcome = f"failed after {(time.time() - started) * 1000:.0f} ms ({type(e).__name__})"
    print(f"  {n} half-sent requests open; an ordinary request: {outcome}")
    time.sleep(12)
    refused = closed = still_open = 0
    for s in socks:
        try:
            s.settimeout(0.01)
            head = s.recv(12)
            if head.startswith(b"HTTP/1.1 503"):
                refused += 1
            elif head == b"":
                closed += 1
            else:
                still_open += 1
        except socket.timeout:
            still_open += 1
        except OSError:
            closed += 1
        s.close()
    print(
        f"  after 12 s: {refused} refused at once (503, over a connection cap), "
        f"{closed} closed by the header timeout, {still_open} still open"
    )


if __name__ == "__main__":
    project, client_key = setup()
    print("event flood (8 x 100,000 events, client key):")
    flood(project, client_key)
    print("slow clients:")
    slowloris()
