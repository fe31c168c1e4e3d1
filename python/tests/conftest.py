import os
import pathlib
import signal
import threading
import time

import pytest

import lookahead as la

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ctx():
    """The adapter under test; fails (never skips) without one, naming the install command."""
    if not la.adapters():
        pytest.fail("no GPU adapter: install lavapipe with apt-get update && apt-get install -y mesa-vulkan-drivers")
    return la.Context(os.environ.get("LOOKAHEAD_ADAPTER"))


@pytest.fixture(scope="session")
def cli():
    """The release binary built from this checkout (`cargo build --release`)."""
    path = os.environ.get("LOOKAHEAD_BIN", str(ROOT / "target" / "release" / "lookahead"))
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run `cargo build --release` first (or set LOOKAHEAD_BIN)")
    return path


class Sigint:
    """Ctrl-C from outside: SIGINT to this process from another thread, `delay` seconds after
    `send`, as it arrives while the engine works with the GIL released."""

    # The longest time from the signal to the engine's stop: it checks within a second; the rest
    # is room for a loaded two-core machine running lavapipe.
    BOUND = 5.0

    def __init__(self):
        self.sent = None

    def send(self, delay=0.0):
        threading.Timer(delay, self._kill).start()

    def _kill(self):
        self.sent = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    def since(self):
        """Seconds since the signal (None before it)."""
        return None if self.sent is None else time.monotonic() - self.sent


@pytest.fixture
def sigint():
    """A :class:`Sigint`; the SIGINT handler and the wakeup descriptor must be as they were after
    the test. Python's own handler is put in place for the test where the process was started
    with SIGINT ignored (a shell's background job), as a terminal's Ctrl-C finds it."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    handler = signal.getsignal(signal.SIGINT)
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    yield Sigint()
    assert signal.getsignal(signal.SIGINT) is handler
    assert signal.set_wakeup_fd(wakeup) == wakeup
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
