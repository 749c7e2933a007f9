"""The official `openai` Python client against `outpost serve` (run by
serve_openai.rs, which starts the server and passes OUTPOST_BASE_URL and the
greedy `outpost run` answer in EXPECTED_RUN_TEXT)."""
import json
import os

import openai

import client_checks
from client_checks import check

client = openai.OpenAI(base_url=os.environ["OUTPOST_BASE_URL"], api_key="unused")
MODEL = "smollm2-135m"
QUESTION = "Which city is the capital of France?"


# models
ids = [m.id for m in client.models.list().data]
check(MODEL in ids, f"models list has {MODEL}: {ids}")

# chat, greedy: the same answer as `outpost run`
r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=40)
answer = r.choices[0].message.content
check(answer == os.environ["EXPECTED_RUN_TEXT"], f"API answer {answer!r} == outpost run {os.environ['EXPECTED_RUN_TEXT']!r}")
check(r.choices[0].finish_reason in ("stop", "length"), "finish_reason")
check(r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, f"usage {r.usage}")
check(r.system_fingerprint.startswith("sha256:"), "system_fingerprint is the model digest")

# streaming gives the same text
stream = client.chat.completions.create(
    model=MODEL, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=40, stream=True,
    stream_options={"include_usage": True},
)
parts, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.content:
            parts.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
check("".join(parts) == answer, f"streamed {''.join(parts)!r} == {answer!r}")
check(finish in ("stop", "length") and usage is not None, f"stream end: finish {finish}, usage {usage}")

# turn 2 reuses turn 1 from the prompt cache
turn2 = client.chat.completions.create(
    model=MODEL,
    messages=[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}, {"role": "user", "content": "And of Italy?"}],
    temperature=0, max_tokens=40,
)
cached = turn2.usage.prompt_tokens_details.cached_tokens
check(cached >= r.usage.prompt_tokens + r.usage.completion_tokens - 4, f"turn 2 cached {cached} >= turn 1 prompt {r.usage.prompt_tokens} + answer {r.usage.completion_tokens} - 4")

# logprobs
r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], temperature=0, max_tokens=5, logprobs=True, top_logprobs=2)
lp = r.choices[0].logprobs.content
check(len(lp) == r.usage.completion_tokens, f"{len(lp)} logprobs for {r.usage.completion_tokens} tokens")
check(all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in lp), "top_logprobs of 2, logprob <= 0")
check(all(abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6 for t in lp), "greedy picks the top token")

# structured output: the answer parses and follows the schema
schema = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}, "population_millions": {"type": "integer"}},
    "required": ["city", "country", "population_millions"],
    "additionalProperties": False,
}
r = client.chat.completions.create(
    model=MODEL, messages=[{"role": "user", "content": "Give the capital of France as JSON."}], temperature=0, max_tokens=80,
    response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}},
)
doc = json.loads(r.choices[0].message.content)
check(set(doc) == {"city", "country", "population_millions"}, f"schema keys {doc}")
check(isinstance(doc["city"], str) and isinstance(doc["population_millions"], int), f"schema types {doc}")
r = client.chat.completions.create(
    model=MODEL, messages=[{"role": "user", "content": "Give the capital of France as JSON with the keys city and country."}], temperature=0, max_tokens=200,
    response_format={"type": "json_object"},
)
# A grammar keeps every prefix valid; only a finished answer is a whole document.
check(r.choices[0].finish_reason == "stop", f"json_object finished: {r.choices[0].finish_reason} {r.choices[0].message.content!r}")
check(isinstance(json.loads(r.choices[0].message.content), dict), f"json_object {r.choices[0].message.content!r}")

# legacy completions
c = client.completions.create(model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=8)
check(c.choices[0].text.startswith(" Paris."), f"completion {c.choices[0].text!r}")
c = client.completions.create(model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=4, echo=True)
check(c.choices[0].text.startswith("The capital of France is Paris"), f"echo {c.choices[0].text!r}")
c = client.completions.create(model=MODEL, prompt="The capital of France is Paris", max_tokens=0, echo=True, logprobs=1)
tl = c.choices[0].logprobs.token_logprobs
check(tl[0] is None and all(x is not None and x <= 0 for x in tl[1:]), f"prompt scoring {tl}")
check(c.usage.completion_tokens == 0, "scoring generates nothing")

# errors: OpenAI's shape, the right status, the parameter named
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    check(False, "unknown model must fail")
except openai.NotFoundError as e:
    check(e.body["code"] == "model_not_found", f"unknown model: {e.body}")
for kwargs, param in [({"temperature": 5}, "temperature"), ({"n": 2}, "n"), ({"top_p": 0}, "top_p"), ({"extra_body": {"mystery": 1}}, "mystery")]:
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], **kwargs)
        check(False, f"{kwargs} must fail")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.body["param"] == param, f"{kwargs}: {e.body}")
try:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 5000}])
    check(False, "overlong prompt must fail")
except openai.BadRequestError as e:
    check(e.body["code"] == "context_length_exceeded" and "2048" in e.body["message"], f"overflow: {e.body}")

print(json.dumps({"checks": client_checks.count, "answer": answer}))
