"""Schemathesis hooks for Outpost's contract tests (loaded through
SCHEMATHESIS_HOOKS): Ollama streams newline-delimited JSON, one object a
line; every line must parse, and the last one (done: true, with the
timings) is what the response schema is checked against."""
import json

import schemathesis


@schemathesis.deserializer("application/x-ndjson")
def ndjson(ctx, response):
    lines = [line for line in response.content.decode("utf-8").splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]
    return objects[-1] if objects else None
