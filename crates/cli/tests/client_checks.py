"""What the Python client scripts share (route_client.py, openai_client.py,
ollama_client.py, each run by its Rust test as `python3 SCRIPT`, so this
folder is on the import path): `check` counts each condition that holds
and exits 1 at the first that fails, saying what."""
import sys

count = 0


def check(cond, what):
    global count
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    count += 1


def random_schema(rng, depth):
    """A random tool parameter schema: nested objects, arrays, enums,
    bounded integers, required and optional keys (the tool tests'
    property runs)."""
    props = {}
    for i in range(rng.randint(1, 3)):
        kind = rng.choice(["string", "integer", "boolean", "enum", "array", "object"] if depth < 2 else ["string", "integer", "enum"])
        if kind == "string":
            s = {"type": "string", "maxLength": rng.randint(1, 12)}
            if rng.random() < 0.3:
                s["minLength"] = 1
        elif kind == "integer":
            lo = rng.randint(-50, 50)
            s = {"type": "integer", "minimum": lo, "maximum": lo + rng.randint(0, 500)}
        elif kind == "boolean":
            s = {"type": "boolean"}
        elif kind == "enum":
            s = {"enum": rng.sample(["red", "green", "blue", "north", "south", "low", "high"], rng.randint(1, 4))}
        elif kind == "array":
            s = {"type": "array", "items": rng.choice([{"type": "integer", "minimum": 0, "maximum": 9}, {"enum": ["a", "b", "c"]}]),
                 "minItems": rng.randint(0, 1), "maxItems": rng.randint(1, 3)}
        else:
            s = random_schema(rng, depth + 1)
        props[f"{kind}_{i}"] = s
    keys = list(props)
    out = {"type": "object", "properties": props, "required": rng.sample(keys, rng.randint(0, len(keys)))}
    if rng.random() < 0.5:
        out["additionalProperties"] = False
    return out


def streamed_calls(stream, on_first=None):
    """Reads a streamed chat completion's tool-call deltas: ({index:
    {"name", "arguments"}}, finish_reason, delta count, content). The
    first delta of each call goes to on_first (it must carry id, type and
    name)."""
    seen, finish, pieces, content = {}, None, 0, ""
    for chunk in stream:
        if not chunk.choices:
            continue
        ch = chunk.choices[0]
        finish = ch.finish_reason or finish
        content += ch.delta.content or ""
        for d in ch.delta.tool_calls or []:
            pieces += 1
            if d.index not in seen:
                if on_first:
                    on_first(d)
                seen[d.index] = {"name": d.function.name, "arguments": ""}
            seen[d.index]["arguments"] += d.function.arguments or ""
    return seen, finish, pieces, content
