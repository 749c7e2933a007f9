"""The official `ollama` Python client against `outpost serve` (run by
serve_ollama.rs, which starts the server with smollm2-135m and gemma3-270m
and passes OUTPOST_HOST and the greedy `outpost run` answer in
EXPECTED_RUN_TEXT)."""
import json
import os

import ollama

import client_checks
from client_checks import check

client = ollama.Client(host=os.environ["OUTPOST_HOST"])
SMOL, GEMMA = "smollm2-135m", "gemma3-270m"
QUESTION = "Which city is the capital of France?"
GREEDY = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 40}


# tags: both models, with details from their GGUF headers
tags = {m.model: m for m in client.list().models}
check(set(tags) == {SMOL, GEMMA}, f"tags: {list(tags)}")
check(tags[SMOL].details.quantization_level == "Q4_1", f"smol quant: {tags[SMOL].details}")
check(tags[GEMMA].details.quantization_level == "Q4_K_M", f"gemma quant: {tags[GEMMA].details}")
check(tags[GEMMA].details.family == "gemma3", f"gemma family: {tags[GEMMA].details}")
check(len(tags[SMOL].digest) == 64 and tags[SMOL].size > 50_000_000, f"smol digest/size: {tags[SMOL]}")

# show
show = client.show(GEMMA)
check(show.modelinfo["general.architecture"] == "gemma3", f"show model_info: {show.modelinfo}")
check(show.modelinfo["gemma3.context_length"] == 32768, f"context_length: {show.modelinfo}")
check("completion" in show.capabilities, f"capabilities: {show.capabilities}")
check("<start_of_turn>" in show.template, "show has the chat template in use")

# chat, greedy: the same answer as `outpost run`
r = client.chat(model=SMOL, messages=[{"role": "user", "content": QUESTION}], options=GREEDY, stream=False)
check(r.message.role == "assistant", f"role: {r.message.role}")
check(r.message.content == os.environ["EXPECTED_RUN_TEXT"], f"greedy chat {r.message.content!r} != outpost run {os.environ['EXPECTED_RUN_TEXT']!r}")
# On topic; which city SmolLM2-135M names greedily depends on the CPU's
# kernels (llama-server answers the same on each: reference_parity.rs).
check("Paris" in r.message.content or "capital of France" in r.message.content, f"answer: {r.message.content!r}")
check(r.done and r.done_reason == "stop", f"done: {r.done} {r.done_reason}")
check(r.eval_count > 0 and r.prompt_eval_count > 10, f"counts: {r.eval_count} {r.prompt_eval_count}")
check(r.total_duration >= r.eval_duration > 0 and r.prompt_eval_duration > 0, f"durations: {r}")
check(r.load_duration > 0, f"first request loads the model: load_duration {r.load_duration}")

# chat, streaming: the pieces add up to the same answer; only the last is done
parts = list(client.chat(model=SMOL, messages=[{"role": "user", "content": QUESTION}], options=GREEDY, stream=True))
check(len(parts) > 3, f"{len(parts)} stream parts")
check(all(not p.done for p in parts[:-1]) and parts[-1].done, "only the last part is done")
check("".join(p.message.content for p in parts) == r.message.content, "streamed text == non-streamed text")
check(parts[-1].eval_count == r.eval_count, f"eval_count {parts[-1].eval_count} vs {r.eval_count}")
check(parts[-1].load_duration == 0, "second request finds the model loaded")

# generate, streaming, on the second model; num_predict gives done_reason length
parts = list(client.generate(model=GEMMA, prompt="Write a poem about the sea.", options={"num_predict": 12, "seed": 7}, stream=True))
check(parts[-1].done and parts[-1].done_reason == "length", f"done_reason: {parts[-1].done_reason}")
check(parts[-1].eval_count == 12, f"eval_count {parts[-1].eval_count}")
check(len("".join(p.response for p in parts)) > 10, "generated text")

# generate, raw: no template
g = client.generate(model=GEMMA, prompt="Monday, Tuesday, Wednesday,", raw=True, options={"temperature": 0, "repeat_penalty": 1.0, "num_predict": 5}, stream=False)
check("Thursday" in g.response, f"raw generate: {g.response!r}")

# format=json and a JSON schema
r = client.chat(model=SMOL, messages=[{"role": "user", "content": "Describe Alice, who is 30, as JSON with keys name and age."}], format="json", options={"temperature": 0, "num_predict": 80}, stream=False)
obj = json.loads(r.message.content)
check(isinstance(obj, dict), f"format=json gives an object: {r.message.content!r}")
schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}, "required": ["city", "population"]}
r = client.generate(model=SMOL, prompt="Name a big city and its population.", format=schema, options={"temperature": 0, "num_predict": 80}, stream=False)
obj = json.loads(r.response)
check(isinstance(obj.get("city"), str) and isinstance(obj.get("population"), int), f"schema: {r.response!r}")

# ps: both models loaded at once
ps = {m.model: m for m in client.ps().models}
check(set(ps) == {SMOL, GEMMA}, f"ps: {list(ps)}")
check(ps[SMOL].size > tags[SMOL].size, "ps size counts KV cache and buffers beyond the file")
check(ps[SMOL].context_length == 2048, f"context_length {ps[SMOL].context_length}")

# errors: Ollama's shape, the field named
for call, status, needle in [
    (lambda: client.chat(model="nope", messages=[{"role": "user", "content": "x"}]), 404, "nope"),
    (lambda: client.chat(model=SMOL, messages=[{"role": "user", "content": "x"}], options={"temperature": -1}), 400, "options.temperature"),
    (lambda: client.chat(model=SMOL, messages=[{"role": "user", "content": "x"}], options={"mirostat": 2}), 400, "options.mirostat"),
    (lambda: client.chat(model=SMOL, messages=[{"role": "user", "content": "x"}], options={"num_ctx": 100000}), 400, "--ctx-size"),
    (lambda: client.chat(model=SMOL, messages=[{"role": "user", "content": "x"}], keep_alive="soon"), 400, "keep_alive"),
]:
    try:
        call()
        check(False, f"expected an error containing {needle!r}")
    except ollama.ResponseError as e:
        check(e.status_code == status and needle in e.error, f"{needle}: {e.status_code} {e.error}")

# keep_alive 0 on an empty generate unloads the model now
r = client.generate(model=GEMMA, prompt="", keep_alive=0)
check(r.done and r.done_reason == "unload", f"unload: {r.done_reason}")
check({m.model for m in client.ps().models} == {SMOL}, f"after unload: {client.ps().models}")

print(json.dumps({"checks": client_checks.count}))
