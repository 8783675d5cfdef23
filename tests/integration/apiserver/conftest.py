"""Fixtures of the API server tests: an HTTPS admission webhook server (see webhook_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.apiserver.webhook_server import WebhookServer, running_webhook
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread
from vdpa_operator.tls import CertificateAuthority


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority("webhook-test-ca")


@pytest.fixture
def webhook(ca: CertificateAuthority) -> Iterator[WebhookServer]:
    with running_webhook(ca) as server:
        yield server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServerHandle]:
    """The embedded API server as it starts: built-in namespaces only."""
    handle = serve_in_thread(tmp_path / "kubeconfig")
    yield handle
    handle.stop()
