"""Embeddings through the official `openai` and `ollama` Python clients
against `outpost serve` (run by embeddings.rs, which serves the converted
all-MiniLM-L6-v2 as `minilm` and SmolLM2, and passes OUTPOST_BASE_URL and
OUTPOST_REFERENCE, the NumPy reference's vectors for OUTPOST_SENTENCES)."""
import concurrent.futures
import json
import os

import numpy as np
import ollama
import openai

import client_checks
from client_checks import check

BASE = os.environ["OUTPOST_BASE_URL"]
client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused")
olla = ollama.Client(host=BASE)
sentences = [l.rstrip("\n") for l in open(os.environ["OUTPOST_SENTENCES"], encoding="utf-8")][:32]
reference = [json.loads(l) for l in open(os.environ["OUTPOST_REFERENCE"])][:32]


def cos(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def near_reference(vectors, what):
    worst = min(cos(v, r["embedding"]) for v, r in zip(vectors, reference))
    check(worst >= 0.999, f"{what}: min cosine to the NumPy reference {worst:.6f} >= 0.999")
    return worst


# OpenAI: the client asks for base64 unless told otherwise, and decodes it.
r = client.embeddings.create(model="minilm", input=sentences)
check(r.object == "list" and len(r.data) == len(sentences), "one vector per input")
check([d.index for d in r.data] == list(range(len(sentences))), "indices in input order")
check(all(len(d.embedding) == 384 for d in r.data), "384 dimensions")
check(r.usage.prompt_tokens == sum(len(x["tokens"]) for x in reference), f"usage counts the tokens HF's tokenizer gives: {r.usage}")
worst_b64 = near_reference([d.embedding for d in r.data], "openai base64")
f = client.embeddings.create(model="minilm", input=sentences[:4], encoding_format="float")
near_reference([d.embedding for d in f.data], "openai float")
check(all(abs(np.linalg.norm(d.embedding) - 1) < 1e-4 for d in f.data), "vectors are L2-normalised (the model's Normalize module)")
one = client.embeddings.create(model="minilm", input=sentences[0], encoding_format="float")
check(cos(one.data[0].embedding, f.data[0].embedding) > 0.99999, "a single string embeds as in a batch")
tok = client.embeddings.create(model="minilm", input=reference[1]["tokens"], encoding_format="float")
check(cos(tok.data[0].embedding, f.data[1].embedding) > 0.99999, "a token list embeds as its text does")
toks = client.embeddings.create(model="minilm", input=[x["tokens"] for x in reference[:3]], encoding_format="float")
check(len(toks.data) == 3, "token lists")
same = client.embeddings.create(model="minilm", input=sentences[:4], dimensions=384, encoding_format="float")
check(len(same.data[0].embedding) == 384, "dimensions equal to the width is accepted")


def refused(call, status, *needles):
    try:
        call()
    except openai.APIStatusError as e:
        msg = str(e)
        check(e.status_code == status, f"status {e.status_code} == {status}: {msg}")
        for n in needles:
            check(n in msg, f"{n!r} in {msg!r}")
        return
    check(False, f"expected a {status} naming {needles}")


refused(lambda: client.embeddings.create(model="minilm", input="word " * 600), 400, "602 tokens", "at most 512")
refused(lambda: client.embeddings.create(model="minilm", input="x", dimensions=128), 400, "dimensions = 128", "384")
refused(lambda: client.embeddings.create(model="minilm", input=""), 400, "empty")
refused(lambda: client.embeddings.create(model="smollm2-135m", input="hi"), 400, "does not serve embeddings")
refused(lambda: client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "hi"}]), 400, "embedding model", "does not generate")
refused(lambda: client.embeddings.create(model="nope", input="hi"), 404, "nope")

# Several clients at once: each gets its own vectors back, in order.
def one_client(i):
    chunk = sentences[i % 8 * 4:(i % 8) * 4 + 4]
    got = client.embeddings.create(model="minilm", input=chunk, encoding_format="float")
    return i, [d.embedding for d in got.data]

with concurrent.futures.ThreadPoolExecutor(16) as pool:
    for i, vectors in pool.map(one_client, range(32)):
        base = i % 8 * 4
        worst = min(cos(v, reference[base + k]["embedding"]) for k, v in enumerate(vectors))
        check(worst >= 0.999, f"concurrent client {i} got its own vectors ({worst:.6f})")

# Ollama: /api/embed (string or list, truncate, counts and durations) and /api/embeddings.
e = olla.embed(model="minilm", input=sentences[:8])
check(len(e.embeddings) == 8, "ollama: one vector per input")
near_reference(e.embeddings, "ollama embed")
check(e.prompt_eval_count == sum(len(x["tokens"]) for x in reference[:8]), "ollama prompt_eval_count")
check(e.total_duration > 0 and e.load_duration is not None, "ollama durations")
e1 = olla.embed(model="minilm", input=sentences[0])
check(len(e1.embeddings) == 1 and cos(e1.embeddings[0], reference[0]["embedding"]) >= 0.999, "ollama: a single string")
long = olla.embed(model="minilm", input="word " * 600)
check(long.prompt_eval_count == 512, f"ollama truncates by default to the context: {long.prompt_eval_count}")
try:
    olla.embed(model="minilm", input="word " * 600, truncate=False)
    check(False, "truncate=false on a long input must fail")
except ollama.ResponseError as err:
    check(err.status_code == 400 and "602 tokens" in str(err), f"truncate=false names the length: {err}")
check(olla.show("minilm").capabilities == ["embedding"], "ollama show: an embedding model's capabilities")
check("tools" in olla.show("smollm2-135m").capabilities, "ollama show: a chat model completes and calls tools")
legacy = olla.embeddings(model="minilm", prompt=sentences[2])
check(cos(legacy.embedding, reference[2]["embedding"]) >= 0.999, "ollama legacy /api/embeddings")
try:
    olla.embed(model="smollm2-135m", input="hi")
    check(False, "a chat model must refuse embeddings")
except ollama.ResponseError as err:
    check(err.status_code == 400 and "does not serve embeddings" in str(err), f"{err}")

print(json.dumps({"checks": client_checks.count, "min_cosine_openai": worst_b64}))
