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
