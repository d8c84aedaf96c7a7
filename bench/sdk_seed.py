#!/usr/bin/env python3
"""Seeds a running Vexil with the SDK load test's data and writes the wrk scripts' users.

Creates, through the management API, a project with a server deployment and 50 realistic
flags: 30 percentage rollouts with two or three weighted variants, 12 targeting flags
(country, platform, version, plan, age, a cohort) with their own rollouts, and 8 flags that
depend on earlier ones; a third of them local-mode, JSON payloads on some variants. All are
attached to the deployment and activated. Then writes USERS distinct users for wrk: base64
`X-Amp-Exp-User` headers (vardata.lua) and OFREP contexts (ofrep.lua).

Usage: sdk_seed.py BASE ADMIN_KEY OUT_DIR [USERS]   prints the deployment key
"""
import base64
import json
import random
import sys
import urllib.request

base, admin, out = sys.argv[1], sys.argv[2], sys.argv[3]
users = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
rnd = random.Random(7)


def call(method, path, body=None, if_match=None, content_type="application/json"):
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + admin)
    req.add_header("Content-Type", content_type)
    if if_match is not None:
        req.add_header("If-Match", f'"{if_match}"')
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


call("POST", "/api/v1/projects", {"name": "Load"})
dep = call("POST", "/api/v1/projects/load/deployments", {"label": "Production", "type": "server"})
members = "\n".join(f"user-{i}" for i in range(0, users, 7))
call("PUT", "/api/v1/projects/load/cohorts/loyal", members, content_type="text/csv")

countries = ["US", "CA", "DE", "JP", "NZ", "FR"]
platforms = ["iOS", "Android", "Web"]
plans = ["free", "pro", "enterprise"]


def variants(n):
    names = ["control", "treatment", "treatment-b"][:n]
    out = []
    for name in names:
        v = {"key": name}
        if rnd.random() < 0.4:
            v["payload"] = {"color": rnd.choice(["red", "blue"]), "size": rnd.randrange(1, 9)}
        out.append(v)
    return out


def weights(vs):
    return {v["key"]: rnd.randrange(1, 5) for v in vs}


def condition():
    kind = rnd.randrange(6)
    if kind == 0:
        return {"type": "user_field", "field": "country", "op": "is", "values": rnd.sample(countries, 2)}
    if kind == 1:
        return {"type": "user_field", "field": "platform", "op": "is not", "values": [rnd.choice(platforms)]}
    if kind == 2:
        return {"type": "user_field", "field": "version", "op": "version greater or equal", "values": ["2.1.0"]}
    if kind == 3:
        return {"type": "user_property", "property": "plan", "op": "is", "values": rnd.sample(plans, 2)}
    if kind == 4:
        return {"type": "user_property", "property": "age", "op": "greater", "values": [str(rnd.randrange(18, 60))]}
    return {"type": "cohort", "op": "set contains any", "values": ["loyal"]}


keys = []
for i in range(50):
    key = f"flag-{i:02d}"
    vs = variants(rnd.randrange(1, 4))
    body = {
        "project": "load", "name": key, "key": key, "deployments": ["production"],
        "evaluation_mode": "local" if i % 3 == 0 else "remote",
        "type": "experiment" if i % 4 == 0 else "release",
        "variants": vs,
        "all_other_users": {"percentage": rnd.randrange(10, 91), "weights": weights(vs)},
    }
    if 30 <= i < 42:
        body["segments"] = [{
            "name": f"Segment {j}",
            "conditions": [condition() for _ in range(rnd.randrange(1, 3))],
            "percentage": rnd.randrange(20, 101),
            "weights": weights(vs),
        } for j in range(rnd.randrange(1, 3))]
    if i >= 42:
        # Prerequisites on earlier flags of a compatible mode (local flags on local ones).
        candidates = [k for k in keys if body["evaluation_mode"] == "remote" or int(k[5:]) % 3 == 0]
        prereq = rnd.choice(candidates)
        body["prerequisites"] = [{"flag": prereq, "variants": ["control", "off"]}]
    created = call("POST", "/api/v1/flags", body)
    call("POST", f"/api/v1/flags/{key}/activate", if_match=created["version"])
    keys.append(key)

headers, contexts = [], []
for i in range(users):
    user = {"user_id": f"user-{i}", "device_id": f"dev-{i % 5000}", "country": rnd.choice(countries),
            "platform": rnd.choice(platforms), "version": f"2.{rnd.randrange(4)}.{rnd.randrange(4)}",
            "user_properties": {"plan": rnd.choice(plans), "age": rnd.randrange(16, 80)}}
    text = json.dumps(user, separators=(",", ":"))
    headers.append(base64.urlsafe_b64encode(text.encode()).decode().rstrip("="))
    ctx = {"targetingKey": user["user_id"], "country": user["country"], "platform": user["platform"],
           "version": user["version"], **user["user_properties"]}
    contexts.append(json.dumps({"context": ctx}, separators=(",", ":")))

with open(f"{out}/users.txt", "w") as f:
    f.write("\n".join(headers) + "\n")
with open(f"{out}/contexts.txt", "w") as f:
    f.write("\n".join(contexts) + "\n")
print(dep["api_key"])
