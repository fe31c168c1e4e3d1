import os
import pathlib

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
