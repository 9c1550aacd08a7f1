#!/usr/bin/env python3
"""Sends one of each Segment call through an unmodified SDK: `sdk_send.py segment|rudder URL KEY`.
Used by ingest/tests/sdks.rs, which checks what arrived on the topic."""
import sys

which, url, key = sys.argv[1:4]
errors = []


def on_error(error, batch):
    errors.append(repr(error))


if which == "segment":
    from segment.analytics import Client
else:
    from rudderstack.analytics import Client

# sync_mode: each call is posted (to /v1/batch) before the next, so the group call is known
# to ingest before the calls that rely on it for attribution.
c = Client(write_key=key, host=url, sync_mode=True, on_error=on_error, max_retries=0)
p = which
c.identify(user_id=f"{p}-user", traits={"email": f"{p}@example.com"}, message_id=f"{p}-1")
c.group(user_id=f"{p}-user", group_id=f"{p}-acct", traits={"plan": "pro", "seats": 10}, message_id=f"{p}-2")
c.track(user_id=f"{p}-user", event="Report Exported", properties={"format": "csv"}, message_id=f"{p}-3")
c.track(user_id=f"{p}-user", event="Signed In", context={"groupId": f"{p}-acct"}, message_id=f"{p}-4")
c.page(user_id=f"{p}-user", category="Docs", name="Pricing", message_id=f"{p}-5")
c.screen(user_id=f"{p}-user", name="Home", message_id=f"{p}-6")
c.alias(previous_id=f"{p}-anon", user_id=f"{p}-user", message_id=f"{p}-7")
c.flush()
if errors:
    sys.exit(f"{which} SDK reported errors: {errors}")
print(f"{which}: 7 calls sent")
