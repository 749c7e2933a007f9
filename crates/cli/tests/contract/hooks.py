"""Schemathesis hooks for Outpost's contract tests (loaded through
SCHEMATHESIS_HOOKS). Ollama streams newline-delimited JSON, one object a
line; every line must parse, and the last one (done: true, with the
timings) is what the response schema is checked against."""
import json
import os

import schemathesis


@schemathesis.deserializer("application/x-ndjson")
def ndjson(ctx, response):
    lines = [line for line in response.content.decode("utf-8").splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]
    return objects[-1] if objects else None


# The fleet's routes take one of two bearer tokens (see its document's
# security schemes): the admin token under /admin/v1, a device token for
# check-in, telemetry and artifacts. The test passes both through the
# environment; for the server they are unset and nothing changes.
DEVICE_ROUTES = ("/v1/devices/check-in", "/v1/telemetry", "/v1/artifacts/")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    admin = os.environ.get("OUTPOST_CONTRACT_ADMIN_TOKEN")
    device = os.environ.get("OUTPOST_CONTRACT_DEVICE_TOKEN")
    path = case.operation.path
    token = None
    if admin and path.startswith("/admin/"):
        token = admin
    elif device and path.startswith(DEVICE_ROUTES):
        token = device
    if token:
        if case.headers is None:
            case.headers = {}
        case.headers["Authorization"] = f"Bearer {token}"
