"""Ctrl-C while the engine works. Python runs signal handlers only between bytecodes of the main
thread, and the engine works with the GIL released, so no handler runs during a training or a
plan. CPython's C-level handler, though, writes each signal's number to the wakeup descriptor
(``signal.set_wakeup_fd``) at once; :func:`signal_fds` makes a pipe that descriptor around an
engine call, whose native side watches its read end and raises the engine's interrupt flag on
SIGINT."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Callable, Iterator, List, Optional, Tuple

from . import _lookahead as _lk

SignalFds = Optional[Tuple[int, int]]


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signal_fds() -> Iterator[SignalFds]:
    """A pipe as the wakeup descriptor for the block: yields (its read end, the previous wakeup
    descriptor or -1, to which the engine passes every byte on), then restores the previous one
    and closes the pipe. Off the main thread, or where signals have no wakeup descriptor, yields
    None and changes nothing."""
    if os.name != "posix" or not _on_main_thread():
        yield None
        return
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    try:
        yield (r, previous)
    finally:
        signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)


@contextlib.contextmanager
def ctrl_c_noted(on_first: Optional[Callable[[], None]] = None) -> Iterator[List[int]]:
    """While the block runs on the main thread, a SIGINT handler: the first Ctrl-C is noted in
    the yielded list (and ``on_first`` called), a second raises KeyboardInterrupt; the previous
    handler is restored after. Off the main thread nothing changes (the list stays empty)."""
    pressed: List[int] = []
    if not _on_main_thread():
        yield pressed
        return

    def on_sigint(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        if on_first is not None:
            on_first()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def stopping_on_ctrl_c(call: Callable[[SignalFds], Any]) -> Any:
    """``call(fds)`` with, on the main thread, a SIGINT handler and :func:`signal_fds`: the first
    Ctrl-C stops the engine at its next consistent point (``call`` returns), a second raises
    KeyboardInterrupt; the previous handler is restored after."""
    if not _on_main_thread():
        return call(None)
    with ctrl_c_noted(_lk.request_stop):
        with signal_fds() as fds:
            return call(fds)
