"""Private network namespaces for real-kernel tests, and the iproute2/ethtool CLIs as oracles.

Every namespace gets a unique `vdpa-t-<hex>` name and is removed in a `finally`, which also destroys the links
created inside it; tests never create links in the host namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces and links")


def unique_name() -> str:
    return f"vdpa-t-{secrets.token_hex(4)}"


@contextmanager
def private_netns() -> Iterator[str]:
    """A named netns (`ip netns add`), removed afterwards; skips the test where namespaces cannot be made."""
    name = unique_name()
    created = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {created.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def run(*command: str, netns: str | None = None, timeout: float = 60) -> str:
    """Run a CLI (inside `netns` when given) and return its stdout; fail the test on a non-zero exit (and raise
    `subprocess.TimeoutExpired` after `timeout` seconds)."""
    argv = ["ip", "netns", "exec", netns, *command] if netns else list(command)
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr.strip()}"
    return result.stdout


def ip_json(*args: str, netns: str | None = None) -> Any:
    """`ip -j [-n netns] ARGS` parsed (the oracle for rtnl state)."""
    prefix = ["ip", "-j"] + (["-n", netns] if netns else [])
    return json.loads(run(*prefix, *args) or "[]")


def ip_link(name: str, netns: str) -> dict[str, Any] | None:
    for link in ip_json("link", "show", netns=netns):
        if link["ifname"] == name:
            return dict(link)
    return None
