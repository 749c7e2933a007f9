"""Tool calling through the official `openai` and `ollama` Python clients
against `outpost serve` (run by tools.rs, which starts the server with
SmolLM2 and Gemma 3 and passes OUTPOST_BASE_URL). Every call's arguments
are checked with the `jsonschema` package (the reference validator, not
Outpost's code), including a property run over random parameter schemas."""
import json
import os
import random

import jsonschema
import ollama
import openai

import client_checks
from client_checks import check, random_schema, streamed_calls

BASE = os.environ["OUTPOST_BASE_URL"]
client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused")
MODELS = ["smollm2-135m", "gemma3-270m"]

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
TIME = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Current local time in a city", "parameters": TIME}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def valid(name, arguments, schemas=SCHEMAS):
    """The call names a known tool and its arguments validate."""
    check(name in schemas, f"call names a tool: {name}")
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    jsonschema.validate(args, schemas[name])
    return args


for model in MODELS:
    # Not streamed, `required`: calls, each valid.
    r = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=200)
    c = r.choices[0]
    check(c.finish_reason == "tool_calls", f"{model}: finish_reason {c.finish_reason}")
    check(c.message.tool_calls and c.message.content is None, f"{model}: calls and no content: {c.message}")
    for call in c.message.tool_calls:
        check(call.id.startswith("call_") and call.type == "function", f"{model}: call id and type: {call}")
        valid(call.function.name, call.function.arguments)

    # A named function, one call only.
    r = client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, temperature=0, max_tokens=200, parallel_tool_calls=False,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = r.choices[0].message.tool_calls
    check(len(calls) == 1 and calls[0].function.name == "get_time", f"{model}: the named function, once: {calls}")
    valid("get_time", calls[0].function.arguments)

    # Streamed: the first delta of each call has id, type and name; the
    # argument fragments join into valid JSON; the end says tool_calls.
    stream = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=200, stream=True)
    seen, finish, pieces, _ = streamed_calls(stream, lambda d: check(
        d.id and d.type == "function" and d.function.name, f"{model}: first delta of call {d.index}: {d}"))
    check(finish == "tool_calls", f"{model}: streamed finish_reason {finish}")
    check(seen and pieces > len(seen) * 2, f"{model}: arguments came in pieces ({pieces} deltas for {len(seen)} calls)")
    for call in seen.values():
        valid(call["name"], call["arguments"])

    # The whole loop: call, tool result, answer in words. Gemma 3 270M is a
    # base model that keeps calling under `auto`, so its last turn says
    # tool_choice "none"; SmolLM2 answers under `auto`.
    first = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, temperature=0, max_tokens=200)
    call = first.choices[0].message.tool_calls[0]
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees celsius"},
    ]
    last = client.chat.completions.create(
        model=model, messages=history, tools=TOOLS, temperature=0, max_tokens=60,
        tool_choice="auto" if model == "smollm2-135m" else "none",
    )
    m = last.choices[0].message
    check(not m.tool_calls and m.content and m.content.strip(), f"{model}: an answer after the tool result: {m}")
    check(last.choices[0].finish_reason in ("stop", "length"), f"{model}: finish {last.choices[0].finish_reason}")

# Bad input: 400s that name the field.
for tools, choice, param in [
    (TOOLS + [TOOLS[0]], None, "tools[2].function.name"),
    (TOOLS, {"type": "function", "function": {"name": "nope"}}, "tool_choice.function.name"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "string", "pattern": "^a+$"}}}}}], None,
     "tools[0].function.parameters.properties.x.pattern"),
]:
    try:
        kw = {"tool_choice": choice} if choice else {}
        client.chat.completions.create(model=MODELS[0], messages=ASK, tools=tools, max_tokens=5, **kw)
        check(False, f"refused: {param}")
    except openai.BadRequestError as e:
        check(e.body.get("param") == param, f"400 names {param}: {e.body}")
try:
    client.chat.completions.create(model=MODELS[0], tools=TOOLS, max_tokens=5, messages=ASK + [{"role": "tool", "tool_call_id": "call_x", "content": "1"}])
    check(False, "a tool result for no call is refused")
except openai.BadRequestError as e:
    check(e.body.get("param") == "messages[1].tool_call_id", f"400 names the tool_call_id: {e.body}")


# Property: random parameter schemas (client_checks.random_schema);
# every call validates.
rng = random.Random(20261203)
cases = 0
for model, n in [("smollm2-135m", 10), ("gemma3-270m", 6)]:
    for k in range(n):
        params = random_schema(rng, 0)
        tool = {"type": "function", "function": {"name": f"tool_{k}", "description": "Records what the user asked for", "parameters": params}}
        r = client.chat.completions.create(
            model=model, temperature=0.8, seed=k, max_tokens=400,
            messages=[{"role": "user", "content": "Fill in the form for a trip to the mountains."}],
            tools=[tool], tool_choice={"type": "function", "function": {"name": f"tool_{k}"}},
        )
        c = r.choices[0]
        check(c.finish_reason == "tool_calls", f"{model} schema {k}: finished with a call, not {c.finish_reason}: {c.message.content!r}")
        for call in c.message.tool_calls:
            valid(call.function.name, call.function.arguments, {f"tool_{k}": params})
            cases += 1
check(cases >= 16, f"property cases {cases}")

# Ollama's client: tools, calls with object arguments, a tool message.
oc = ollama.Client(host=BASE)
for model in MODELS:
    r = oc.chat(model=model, messages=ASK, tools=TOOLS, options={"temperature": 0, "num_predict": 200})
    calls = r.message.tool_calls or []
    check(calls, f"ollama {model}: tool calls: {r.message}")
    for call in calls:
        check(isinstance(call.function.arguments, dict), "ollama arguments are an object")
        valid(call.function.name, call.function.arguments)
    streamed = [c for part in oc.chat(model=model, messages=ASK, tools=TOOLS, stream=True, options={"temperature": 0, "num_predict": 200})
                for c in (part.message.tool_calls or [])]
    check([c.function.name for c in streamed] == [c.function.name for c in calls], f"ollama {model}: streamed calls match: {streamed}")
    history = ASK + [
        {"role": "assistant", "content": "", "tool_calls": [calls[0].model_dump()]},
        {"role": "tool", "content": "Sunny, 24 degrees celsius", "tool_name": calls[0].function.name},
    ]
    tools = TOOLS if model == "smollm2-135m" else None
    r = oc.chat(model=model, messages=history, tools=tools, options={"temperature": 0, "num_predict": 60})
    check(r.message.content.strip() and not r.message.tool_calls, f"ollama {model}: an answer after the tool: {r.message}")

print(json.dumps({"checks": client_checks.count, "property_cases": cases}))
