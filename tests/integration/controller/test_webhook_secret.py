"""The webhook certificate shared through a Secret: replicas and restarts serve one certificate, so the caBundle
registered in the webhook configurations stays valid for all of them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from operator_harness import NS, client_for

from vdpa_operator.controller.webhook import shared_certificate
from vdpa_operator.kubeclient import SecretResource
from vdpa_operator.sim.apiserver import ServerHandle

NAMES = ["operator-webhook-service.openshift-sriov-network-operator.svc", "127.0.0.1"]


def test_replicas_starting_together_end_with_one_certificate(server: ServerHandle, tmp_path: Path) -> None:
    async def main() -> None:
        client = client_for(server)
        try:
            first, second = await asyncio.gather(
                shared_certificate(client, NS, "webhook-cert", tmp_path / "a", NAMES),
                shared_certificate(client, NS, "webhook-cert", tmp_path / "b", NAMES))
            assert first.ca_pem == second.ca_pem
            assert (tmp_path / "a" / "tls.crt").read_bytes() == (tmp_path / "b" / "tls.crt").read_bytes()
            secret = await client.get(SecretResource, "webhook-cert", namespace=NS)
            assert secret["type"] == "kubernetes.io/tls"
            assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}

            # A restart on an empty disk reuses the Secret's certificate.
            again = await shared_certificate(client, NS, "webhook-cert", tmp_path / "c", NAMES)
            assert again.ca_pem == first.ca_pem

            # A name the certificate does not cover: a new one, written back for the other replicas.
            wider = await shared_certificate(client, NS, "webhook-cert", tmp_path / "d", [*NAMES, "10.0.0.7"])
            assert wider.ca_pem != first.ca_pem
            after = await shared_certificate(client, NS, "webhook-cert", tmp_path / "e", [*NAMES, "10.0.0.7"])
            assert after.ca_pem == wider.ca_pem
        finally:
            await client.close()

    asyncio.run(main())
