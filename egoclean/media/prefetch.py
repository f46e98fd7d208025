"""Run an iterator in a background thread a bounded number of items ahead.

Decoding (PyAV), remapping (OpenCV) and the model (torch) release the GIL, so on a few
cores a decode thread overlaps with the consumer's work.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield `items` produced by a background thread, at most `depth` ahead; an exception
    in the producer is re-raised here, and closing this iterator stops the producer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        # a timed put, so a consumer that has stopped never leaves this thread blocked
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(e)
        finally:
            close = getattr(it, "close", None)
            if close is not None and stop.is_set():
                close()

    t = threading.Thread(target=produce, name="egoclean-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()
