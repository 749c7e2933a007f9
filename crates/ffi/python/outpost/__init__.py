"""Outpost inside a Python app: the API UniFFI generates from
crates/ffi/src/api.rs (outpost.ffi) plus what UniFFI leaves to each
language, a generation as an iterator (outpost.stream).

    import outpost
    model = outpost.LocalModel.open("models/smollm2-135m.gguf")
    for piece in outpost.stream(model, "The capital of France is"):
        print(piece, end="", flush=True)
"""

from .ffi import *  # noqa: F401,F403  (the generated API)
from .stream import stream  # noqa: F401
