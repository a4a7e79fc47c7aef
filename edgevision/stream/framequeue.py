"""The bounded hand-off between the capture thread and the inference loop.

Unlike queue.Queue it can drop its *oldest* item when full (a live camera wants the newest
frame, not a backlog) and it can be closed, which wakes a waiting reader at end of stream.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from ..errors import ConfigError

T = TypeVar("T")


class Closed:
    """Returned by `get` once the queue is closed and empty."""


CLOSED = Closed()


class FrameQueue(Generic[T]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"queue_size must be 1 or more, got {capacity}.")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T, *, drop_oldest: bool, stop: threading.Event) -> int:
        """Add `item`; returns how many old items were dropped to make room.

        With drop_oldest=False it waits for room instead (until `stop` is set or the queue closes,
        in which case `item` is discarded).
        """
        with self._cond:
            dropped = 0
            if drop_oldest:
                while len(self._items) >= self.capacity:
                    self._items.popleft()
                    dropped += 1
            else:
                while len(self._items) >= self.capacity and not self._closed and not stop.is_set():
                    self._cond.wait(0.05)
                if self._closed or stop.is_set():
                    return 0
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float) -> T | Closed | None:
        """The oldest item; CLOSED when closed and empty; None if nothing came within `timeout` s."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return CLOSED if self._closed else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def clear(self) -> int:
        with self._cond:
            count = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return count

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
