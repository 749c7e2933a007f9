"""The official `openai` Python client through a routed `outpost serve`
(run by route.rs, which starts a local server and a "cloud" server and
passes OUTPOST_BASE_URL and a Luhn-valid CARD number)."""
import json
import os

import openai

import client_checks
from client_checks import check

client = openai.OpenAI(base_url=os.environ["OUTPOST_BASE_URL"], api_key="unused")
CARD = os.environ["CARD"]
MODEL = "smollm2-135m"


# A simple question stays on the device; the header says so.
raw = client.chat.completions.with_raw_response.create(
    model=MODEL, messages=[{"role": "user", "content": "Which city is the capital of France?"}], temperature=0, max_tokens=8)
check(raw.headers["x-outpost-route"] == "local; reason=simple", f"route {raw.headers.get('x-outpost-route')}")
check(raw.parse().model == MODEL, "answered by the local model")

# A complex prompt with a card number goes to the cloud redacted; the answer has the number back.
prompt = f"Step by step. Card: {CARD}\nCard: {CARD}\nCard:"
raw = client.completions.with_raw_response.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=12)
route = raw.headers["x-outpost-route"]
check(route == "cloud; reason=complexity; redacted=2", f"route {route}")
whole = raw.parse().choices[0].text
check(CARD in whole and "<CREDIT_CARD" not in whole, f"restored answer {whole!r}")

# Streamed (SSE through the router): the same text, restored across split placeholders.
parts = []
for chunk in client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=12, stream=True):
    for c in chunk.choices:
        parts.append(c.text or "")
check("".join(parts) == whole, f"streamed {''.join(parts)!r} == {whole!r}")

# Chat streaming from the cloud, forced per request.
with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], temperature=0, max_tokens=8, stream=True,
        extra_headers={"x-outpost-route-mode": "cloud_only"}) as r:
    check(r.headers["x-outpost-route"] == "cloud; reason=mode", f"route {r.headers.get('x-outpost-route')}")
    text = ""
    for line in r.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for c in json.loads(line[6:])["choices"]:
                text += c["delta"].get("content") or ""
check(len(text) > 0, f"cloud chat stream {text!r}")

# A bad routing header is a 400 that names the header.
try:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                   extra_headers={"x-outpost-latency-budget-ms": "soon"})
    check(False, "a bad budget must fail")
except openai.BadRequestError as e:
    check(e.body["param"] == "x-outpost-latency-budget-ms", f"{e.body}")

print(json.dumps({"checks": client_checks.count, "restored": whole}))
