"""Tool calling in models' own formats, through the official `openai` and
`ollama` Python clients against `outpost serve` (run by tools.rs). The
server serves real models under real models' chat templates taken from
llama.cpp's collection (OUTPOST_NATIVE_MODELS: "model=family,..."), so the
template itself renders the tools, the calls and the results, and the
answer is constrained to that family's call syntax: from the first token
under `required` or a named function, lazily under `auto`. Every call's
arguments are checked with the `jsonschema` package."""
import json
import os
import random
import re

import jsonschema
import ollama
import openai

import client_checks
from client_checks import check, random_schema, streamed_calls

BASE = os.environ["OUTPOST_BASE_URL"]
client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused")
MODELS = dict(p.split("=") for p in os.environ["OUTPOST_NATIVE_MODELS"].split(","))

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TIME = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather forecast for a city", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Current local time in a city", "parameters": TIME}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "system", "content": "You are a helpful assistant."},
       {"role": "user", "content": "What will the weather be in Paris for the next 3 days?"}]


def valid(name, arguments):
    check(name in SCHEMAS, f"call names a tool: {name}")
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    jsonschema.validate(args, SCHEMAS[name])
    return args


def check_id(family, call_id):
    if family == "mistral":
        # Mistral's templates refuse any other id when it comes back.
        check(re.fullmatch(r"[A-Za-z0-9]{9}", call_id), f"mistral id: {call_id!r}")
    else:
        check(call_id.startswith("call_"), f"id {call_id!r}")


for model, family in MODELS.items():
    # `required`: the family's calls from the first token, each valid.
    parallel = family != "llama3"
    r = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required",
                                       temperature=0, max_tokens=200)
    c = r.choices[0]
    check(c.finish_reason == "tool_calls", f"{model}: finish_reason {c.finish_reason}: {c.message}")
    check(c.message.tool_calls, f"{model}: calls: {c.message}")
    if not parallel:
        check(len(c.message.tool_calls) == 1, f"{model}: llama3 templates take one call per turn")
    for call in c.message.tool_calls:
        check_id(family, call.id)
        valid(call.function.name, call.function.arguments)

    # A named function.
    r = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, temperature=0, max_tokens=200,
                                       parallel_tool_calls=False,
                                       tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    check(len(calls) == 1 and calls[0].function.name == "get_time", f"{model}: the named function, once: {calls}")
    valid("get_time", calls[0].function.arguments)

    # Streamed: first delta per call has id, type and name; the fragments
    # join into the same calls as the whole answer. Compared under the same
    # cache state: a prompt served from the KV cache gives other floats
    # than one computed whole, and greedy text may differ (llama-server
    # says the same of its cache_prompt), so the whole answer is asked
    # again, now cached, like the streamed one.
    r = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required",
                                       temperature=0, max_tokens=200)
    whole = [(x.function.name, json.loads(x.function.arguments)) for x in r.choices[0].message.tool_calls]
    stream = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required",
                                            temperature=0, max_tokens=200, stream=True)
    def first(d):
        check(d.id and d.type == "function" and d.function.name, f"{model}: first delta: {d}")
        check_id(family, d.id)
    seen, finish, pieces, _ = streamed_calls(stream, first)
    check(finish == "tool_calls", f"{model}: streamed finish {finish}")
    check(pieces > len(seen) * 2, f"{model}: arguments in pieces ({pieces} deltas, {len(seen)} calls)")
    streamed = [(v["name"], valid(v["name"], v["arguments"])) for _, v in sorted(seen.items())]
    check(streamed == whole, f"{model}: streamed calls {streamed} == whole {whole}")

    # The loop: the call and its result go back through the template, and
    # the answer under `auto` (lazy grammar) is words or valid calls.
    first = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required",
                                           parallel_tool_calls=False, temperature=0, max_tokens=200)
    call = first.choices[0].message.tool_calls[0]
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees celsius"},
    ]
    for stream_it in (False, True):
        kw = dict(model=model, messages=history, tools=TOOLS, temperature=0, max_tokens=60)
        if stream_it:
            seen, finish, _, text = streamed_calls(client.chat.completions.create(stream=True, **kw))
            calls = [(v["name"], v["arguments"]) for _, v in sorted(seen.items())]
        else:
            # Asked twice: the second, like the streamed one after it, runs
            # on a prompt already in the cache (see the note above).
            client.chat.completions.create(**kw)
            m = client.chat.completions.create(**kw).choices[0]
            text, finish = m.message.content or "", m.finish_reason
            calls = [(x.function.name, x.function.arguments) for x in m.message.tool_calls or []]
        if calls:
            check(finish == "tool_calls", f"{model}: auto with calls finishes tool_calls: {finish}")
            for name, args in calls:
                valid(name, args)
        else:
            check(finish in ("stop", "length"), f"{model}: auto answer finishes {finish}")
            # SmolLM2 speaks ChatML, the Hermes template's turns, and
            # answers in words; under a foreign model's turns (Mistral's
            # [INST], Llama 3's headers) it may end at once, which is the
            # model's choice, not the format's.
            check(text.strip() or family != "hermes", f"{model}: auto answer in words: {text!r} {finish}")
            check("<tool_call>" not in text and "[TOOL_CALLS]" not in text, f"{model}: no raw call syntax: {text!r}")
        if not stream_it:
            auto_whole = (text.strip(), [(n, json.loads(a)) for n, a in calls])
        else:
            check((text.strip(), [(n, json.loads(a)) for n, a in calls]) == auto_whole,
                  f"{model}: auto streamed == whole: {text!r} {calls} vs {auto_whole}")

# Property: random parameter schemas in every family's format; each call
# validates against its own schema (by jsonschema, not our code).
rng = random.Random(20261207)
cases = 0
for model, family in MODELS.items():
    for k in range(4):
        params = random_schema(rng, 0)
        name = f"tool_{k}"
        tool = {"type": "function", "function": {"name": name, "description": "Records what the user asked for", "parameters": params}}
        r = client.chat.completions.create(
            model=model, temperature=0.8, seed=k, max_tokens=400,
            messages=[{"role": "user", "content": "Fill in the form for a trip to the mountains."}],
            tools=[tool], tool_choice={"type": "function", "function": {"name": name}},
        )
        c = r.choices[0]
        check(c.finish_reason == "tool_calls", f"{model} schema {k}: {c.finish_reason}: {c.message.content!r}")
        for call in c.message.tool_calls:
            check(call.function.name == name, f"{model}: the named tool")
            jsonschema.validate(json.loads(call.function.arguments), params)
            cases += 1
check(cases >= 12, f"property cases {cases}")

# Ids from elsewhere come back in a history: Mistral's templates take 9
# letters or digits only, so the server maps them (the same id for a call
# and its result) instead of failing the template.
for model, family in MODELS.items():
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_from_elsewhere_1", "type": "function", "function": {"name": "get_time", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_from_elsewhere_1", "content": "10:42"},
    ]
    r = client.chat.completions.create(model=model, messages=history, tools=TOOLS, temperature=0, max_tokens=20)
    check(r.choices[0].finish_reason in ("stop", "length", "tool_calls"), f"{model}: a foreign id is taken: {r}")

# Ollama's client (tools without tool_choice: `auto`, the lazy grammar).
oc = ollama.Client(host=BASE)
for model, family in MODELS.items():
    r = oc.chat(model=model, messages=ASK, tools=TOOLS, options={"temperature": 0, "num_predict": 200})
    for call in r.message.tool_calls or []:
        check(isinstance(call.function.arguments, dict), "ollama arguments are an object")
        valid(call.function.name, call.function.arguments)
    check(r.message.tool_calls or r.message.content.strip() or family != "hermes", f"ollama {model}: calls or words: {r.message}")
    check("<tool_call>" not in r.message.content and "[TOOL_CALLS]" not in r.message.content, f"ollama {model}: no raw call syntax")
    history = ASK + [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}]},
        {"role": "tool", "content": "Sunny, 24 degrees celsius", "tool_name": "get_weather"},
    ]
    r = oc.chat(model=model, messages=history, tools=TOOLS, options={"temperature": 0, "num_predict": 60})
    for call in r.message.tool_calls or []:
        valid(call.function.name, call.function.arguments)
    check(r.message.tool_calls or r.message.content.strip() or family != "hermes", f"ollama {model}: after the tool: {r.message}")

print(json.dumps({"checks": client_checks.count, "property_cases": cases, "models": MODELS}))
