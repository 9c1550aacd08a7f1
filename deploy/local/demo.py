#!/usr/bin/env python3
"""Sends 28 days of demo usage for a small book of accounts to ingest (standard library only).

One account (acme) fades in the last week, so the active-users-drop rule fires for it; the others
are steady, growing or new. Usage: demo.py [INGEST_URL] [WRITE_KEY]
"""
import base64, datetime as dt, json, random, sys, urllib.request

URL = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080") + "/v1/events"
KEY = sys.argv[2] if len(sys.argv) > 2 else "uptake-dev-key"
FEATURES = ["dashboards", "reports", "exports", "alerts", "api", "sso", "workflows", "comments"]
rng = random.Random(42)
today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)

# name: (seats, users active before the last week, users active in the last week, plan, csm)
BOOK = {
    "acme": (20, 12, 3, "enterprise", "dana@vendor.example"),       # fading: 12 -> 3 users
    "globex": (10, 8, 8, "pro", "sam@vendor.example"),              # steady
    "northwind": (30, 10, 16, "enterprise", "dana@vendor.example"), # growing
    "initech": (15, 4, 4, "starter", "lee@vendor.example"),         # small, steady
    "hooli": (25, 0, 6, "pro", "sam@vendor.example"),               # new this week
}

def event(kind, account, user, day, **fields):
    ts = today - dt.timedelta(days=day) + dt.timedelta(hours=rng.randint(8, 18), minutes=rng.randint(0, 59))
    e = {"kind": kind, "account_id": account, "timestamp": ts.isoformat().replace("+00:00", "Z"), **fields}
    if user:
        e["user_id"] = user
    return e

events = []
for account, (seats, before, recent, plan, csm) in BOOK.items():
    start = (today - dt.timedelta(days=200 if before else 5)).date().isoformat()
    events.append(event("account", account, None, 28, traits={"plan": plan, "seats": seats, "csm": csm, "contract_start": start}))
    for day in range(27, -1, -1):
        users = recent if day < 7 else before
        for u in range(users):
            if rng.random() < 0.25 and day % 7 in (5, 6):  # quieter weekends
                continue
            user = f"{account}-user{u + 1}"
            events.append(event("login", account, user, day))
            for f in rng.sample(FEATURES, rng.randint(1, 3)):
                events.append(event("feature_used", account, user, day, feature=f, count=rng.randint(1, 5)))
            if rng.random() < 0.1:
                events.append(event("data_volume", account, user, day, records=rng.randint(10, 500), object="contacts"))

auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
sent = 0
for i in range(0, len(events), 500):
    chunk = events[i : i + 500]
    req = urllib.request.Request(URL, data=json.dumps({"batch": chunk}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": auth})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = json.load(r)
        if body.get("rejected"):
            sys.exit(f"ingest rejected events: {body['rejected'][:3]}")
    sent += len(chunk)
    print(f"    sent {sent}/{len(events)} events", flush=True)
print(sent)
