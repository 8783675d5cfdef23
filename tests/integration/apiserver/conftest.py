"""Fixtures of the API server tests: an HTTPS admission webhook server (see webhook_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integration.apiserver.webhook_server import WebhookServer, running_webhook
from vdpa_operator.sim.apiserver.certs import CertificateAuthority


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority("webhook-test-ca")


@pytest.fixture
def webhook(ca: CertificateAuthority) -> Iterator[WebhookServer]:
    with running_webhook(ca) as server:
        yield server
