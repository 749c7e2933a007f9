"""A generation as a Python iterator of text pieces, over the generated
binding's callback (`PieceSink`). Leaving the loop early (break, an
exception) stops the generation.
"""

import queue
import threading

from . import ffi

_END = object()


class _Sink(ffi.PieceSink):
    def __init__(self, q, stop):
        self._q = q
        self._stop = stop

    def piece(self, text):
        if self._stop.is_set():
            return False
        self._q.put(text)
        return True


def stream(model, prompt=None, *, messages=None, options=None, cancel=None):
    """Yields the pieces of `model`'s answer to `prompt` (plain text) or to
    `messages` (a list of outpost.ChatMessage) as they become final.
    `cancel` (an outpost.CancelFlag) stops it from any thread. The
    generation runs on a thread of its own; closing the iterator stops it
    and waits for it."""
    if (prompt is None) == (messages is None):
        raise ValueError("give either prompt or messages")
    options = options or ffi.GenerateOptions()
    q = queue.Queue()
    stop = threading.Event()
    outcome = {}

    def run():
        try:
            sink = _Sink(q, stop)
            if messages is not None:
                outcome["done"] = model.chat(messages, options, cancel, sink)
            else:
                outcome["done"] = model.generate(prompt, options, cancel, sink)
        except BaseException as e:  # handed to the consumer below
            outcome["error"] = e
        finally:
            q.put(_END)

    worker = threading.Thread(target=run, name="outpost-generate", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            yield item
    finally:
        stop.set()
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
