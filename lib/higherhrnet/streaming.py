"""Stages of a stream run side by side: each in a thread of its own, joined by bounded queues, items kept in
their order.

    for result in run_stages(video_frames, [network, grouping]):   # video_frames decoded in a thread too
        draw_and_write(result)                                      # the caller's own stage, in its thread

Threads, not processes: the work of each stage is done by code that releases the GIL (OpenCV decoding and
drawing, PyTorch's operators, NumPy and SciPy), and nothing has to be pickled. Each stage has one thread and
each queue is first in, first out, so items leave in the order they came, whatever each one costs; a queue
holds at most `queue_size` items, so a fast stage waits for a slow one instead of filling the memory.

A failure in any stage (an exception raised by the iteration of the items or by a stage function) is raised
again, the same exception object, by the caller's loop, after every thread has stopped: the caller handles it
as it would have handled it without threads, and no thread prints a traceback or is left waiting. Ctrl-C and
SIGTERM (interrupts.sigterm_raises) reach the main thread only, which waits on a queue in a way a signal
interrupts: the KeyboardInterrupt stops the stages (each finishes the item in hand) and goes on once they have
stopped. The same happens when the caller stops iterating early (break, close()).

Nothing here knows about videos or networks.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, Sequence

__all__ = ["run_stages"]

# Seconds between looks at the stop flag of a thread waiting on a full or empty queue: how long stopping
# can take beyond the item in hand.
POLL = 0.05


class _End:
    """Put after the last item: the stages before have finished."""


class _Failure:
    """Put instead of an item: the iteration of the items or a stage raised `error`; nothing follows."""

    def __init__(self, error: BaseException):
        self.error = error


def run_stages(items: Iterable, stages: Sequence[Callable], queue_size: int = 2,
               concurrent: bool = True) -> Iterator:
    """stages[-1](... stages[0](item)) for each item of `items`, in order.

    concurrent: the iteration of `items` and each stage run in threads of their own (the module docstring);
    False: one after the other in the caller's thread, the same functions on the same items (for comparison,
    and where threads are not wanted). queue_size: items waiting between two stages, at least 1.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be at least 1, got {queue_size}")
    if not concurrent:
        for item in items:
            for stage in stages:
                item = stage(item)
            yield item
        return

    stop = threading.Event()
    queues = [queue.Queue(maxsize=queue_size) for _ in range(len(stages) + 1)]

    def put(outbox: queue.Queue, value) -> bool:
        """Put value into outbox; False when the stream stopped first."""
        while not stop.is_set():
            try:
                outbox.put(value, timeout=POLL)
                return True
            except queue.Full:
                pass
        return False

    def get(inbox: queue.Queue):
        """The next value of inbox; an _End when the stream stopped first."""
        while True:
            try:
                return inbox.get(timeout=POLL)
            except queue.Empty:
                if stop.is_set():
                    return _End()

    def produce() -> None:
        try:
            for item in items:
                if not put(queues[0], item):
                    return
        except BaseException as error:     # handed to the caller's thread, which raises it
            put(queues[0], _Failure(error))
            return
        put(queues[0], _End())

    def work(stage: Callable, inbox: queue.Queue, outbox: queue.Queue) -> None:
        while True:
            item = get(inbox)
            if isinstance(item, (_End, _Failure)):
                put(outbox, item)
                return
            try:
                result = stage(item)
            except BaseException as error:
                put(outbox, _Failure(error))
                return
            if not put(outbox, result):
                return

    threads = [threading.Thread(target=produce, name="stream-items", daemon=True)]
    threads += [threading.Thread(target=work, args=(stage, queues[i], queues[i + 1]),
                                 name=f"stream-{getattr(stage, '__name__', 'stage')}", daemon=True)
                for i, stage in enumerate(stages)]
    try:
        # Started inside the try: a Ctrl-C that comes while the later threads start (the first stage may already
        # be at work) must still stop the earlier ones.
        for thread in threads:
            thread.start()
        while True:
            item = get(queues[-1])
            if isinstance(item, _End):
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        for thread in threads:
            if thread.ident is not None:    # started
                thread.join()
