"""The Python binding end to end, through the installed wheel
(scripts/build-wheel.sh; run by crates/xtask/tests/python_binding.rs, which
installs it, starts a real `outpost fleet serve` and publishes a sealed
SmolLM2 release): generate, stream, chat and cancel on
the real model; the guard; the device agent inside this process checking
in under conditions the app supplies, installing the sealed release and
opening it from memory. Not HTTP: every call goes through the library."""

import json
import os
import subprocess
import threading

import outpost

# The installed package, not a source tree.
assert outpost.__file__.startswith(os.environ["OUTPOST_WHEEL_SITE"]), outpost.__file__
model_path = os.environ["OUTPOST_MODEL"]
m = outpost.LocalModel.open(model_path)
opts = outpost.GenerateOptions(max_tokens=16, greedy=True, threads=2)

whole = m.generate("The capital of France is", opts)
assert not whole.cancelled and whole.text.strip(), whole
pieces = list(outpost.stream(m, "The capital of France is", options=opts))
assert "".join(pieces) == whole.text and len(pieces) >= 2, (pieces, whole.text)
print("generate:", repr(whole.text), "in", len(pieces), "pieces")

msgs = [outpost.ChatMessage(role="user", content="Which city is the capital of France?")]
chat = m.chat(msgs, opts)
assert chat.text.strip()
assert "".join(outpost.stream(m, messages=msgs, options=opts)) == chat.text
print("chat:", repr(chat.text))

# Cancelled from another thread midway.
flag = outpost.CancelFlag()
long_opts = outpost.GenerateOptions(max_tokens=200, greedy=True, threads=2)
got = []
for p in outpost.stream(m, "Once upon a time", options=long_opts, cancel=flag):
    got.append(p)
    if len(got) == 5:
        threading.Thread(target=flag.cancel).start()
assert 5 <= len(got) < 100 and flag.is_cancelled(), len(got)
# Leaving the loop stops the generation too.
it = outpost.stream(m, "Once upon a time", options=long_opts)
next(it)
it.close()
print("cancelled after", len(got), "pieces")

try:
    outpost.LocalModel.open("/nonexistent/model.gguf")
    raise SystemExit("a missing model opened")
except outpost.OutpostError.Failed as e:
    assert "/nonexistent/model.gguf" in str(e), e
    print("error:", e)

# Embeddings: all-MiniLM-L6-v2, unit vectors, related sentences closer.
emb = outpost.LocalModel.open(os.environ["OUTPOST_EMBEDDING_MODEL"])
vecs = emb.embed(["A cat sits on the mat.", "A kitten rests on a rug.", "Quarterly tax filing deadlines."])
assert len(vecs) == 3 and all(len(v) == 384 for v in vecs), [len(v) for v in vecs]
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
assert all(abs(dot(v, v) - 1.0) < 1e-3 for v in vecs)
assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2]) + 0.2, (dot(vecs[0], vecs[1]), dot(vecs[0], vecs[2]))
try:
    m.embed(["a generative model has no pooled vectors"])
    raise SystemExit("a generative model embedded")
except outpost.OutpostError.Failed as e:
    print("embed refused:", e)
print("embeddings:", len(vecs), "x", len(vecs[0]))

g = outpost.PiiGuard("US")
text = "Email jane.doe@example.com about card 4111 1111 1111 1111."
kinds = {f.entity for f in g.scan(text)}
assert {"EMAIL_ADDRESS", "CREDIT_CARD"} <= kinds, kinds
r = g.redact(text)
assert "jane.doe" not in r.text() and "4111" not in r.text(), r.text()
assert r.restore("I wrote to <EMAIL_ADDRESS_1>.") == "I wrote to jane.doe@example.com."
print("redacted:", r.text())

# The route decision, under the app's policy, with the app's conditions.
policy = 'mode = "auto"\n[cloud]\nurl = "https://cloud.example/v1"\n[auto]\nsensitive = "local"\n'
rp = outpost.RoutePolicy(policy)
d = rp.decide(outpost.RouteRequest(text="What is 2 + 2?", max_tokens=8, local_ctx=2048))
assert (d.target, d.reason, d.findings) == ("local", "simple", 0), d
long = "Summarise the following report in detail. " + "The committee met again. " * 800
d = rp.decide(outpost.RouteRequest(text=long, max_tokens=256, local_ctx=2048))
assert (d.target, d.reason) == ("cloud", "fit"), d
d = rp.decide(outpost.RouteRequest(text="Mail jane.doe@example.com. " + long, max_tokens=256, local_ctx=2048))
assert (d.target, d.reason, d.findings) == ("local", "sensitive", 1), d
d = rp.decide(outpost.RouteRequest(text="What is 2 + 2?", mode="cloud_only"))
assert (d.target, d.reason) == ("cloud", "mode"), d
try:
    outpost.RoutePolicy('mode = "sometimes"\n')
    raise SystemExit("a bad policy parsed")
except outpost.OutpostError.Failed as e:
    assert "sometimes" in str(e), e
print("route:", d.target, d.reason)

data = os.environ["OUTPOST_FLEET_DATA"]
settings = outpost.AgentSettings(
    fleet_url=os.environ["OUTPOST_FLEET_URL"],
    store_dir=os.environ["OUTPOST_STORE"],
    app_key=open(os.path.join(data, "app.key")).read().strip(),
    pinned_keys=[open(os.path.join(data, "signing.pub.json")).read()],
    device_class="phone-8gb",
    channel="beta",
    app_version="1.0.0",
    require_unmetered=True,
)
agent = outpost.DeviceAgent.open(settings)
report = agent.check_in(outpost.DeviceConditions(unmetered=False, battery_pct=80, charging=False))
assert not report.changed and any("waiting" in o and "unmetered" in o for o in report.outcomes), report
report = agent.check_in(outpost.DeviceConditions(unmetered=True))
assert report.changed and any("installed 1.0.0" in o for o in report.outcomes), report
installed = agent.installed()
# Its canary ran in this process and passed (the agent remembers a pass).
state = json.load(open(os.path.join(os.environ["OUTPOST_STORE"], "agent-state.json")))
assert "smollm2-135m" in state["canaries"], state
assert [(i.model, i.version) for i in installed] == [("smollm2-135m", "1.0.0")], installed
print("agent:", report.outcomes)
# The installed release is sealed: opened into memory, same greedy text.
sealed = agent.open_model("smollm2-135m")
assert sealed.generate("The capital of France is", opts).text == whole.text
# The app records what it ran and ships it; the fleet counts it.
agent.record_inference("smollm2-135m", 40.0, 400.0, 16)
agent.record_inference("smollm2-135m", 35.0, 300.0, 12)
sent = agent.flush_telemetry()
assert sent >= 2, sent
try:
    agent.record_inference("smollm2-135m", 50.0, 10.0, 1)
    raise SystemExit("a latency below its ttft was recorded")
except outpost.OutpostError.Failed as e:
    assert "ttft" in str(e), e
print("telemetry sent:", sent)

# The quality canary runs inside the library: 1.0.1's reference
# distributions are upside down, so it fails here and 1.0.0 stays.
fleet = [os.environ["OUTPOST_BIN"], "fleet"]
where = ["--url", os.environ["OUTPOST_FLEET_URL"], "--data", data]
subprocess.run(fleet + ["publish", os.environ["OUTPOST_BAD_RELEASE"]] + where, check=True, capture_output=True)
subprocess.run(fleet + ["release", "smollm2-135m@1.0.1", "--channel", "beta"] + where, check=True, capture_output=True)
report = agent.check_in(outpost.DeviceConditions(unmetered=True))
assert any("1.0.1 failed its canary" in o for o in report.outcomes), report
assert [(i.model, i.version) for i in agent.installed()] == [("smollm2-135m", "1.0.0")], agent.installed()
print("canary:", report.outcomes)
print("ok: the sealed install answers like the plain file")
