"""Kubeconfigs for the embedded API server: one cluster, one bearer-token user, one context.

They carry a token, so they are written as keys are: whole or not at all, mode 0600 from the first byte.
"""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vdpa_operator.fileio import SECRET_MODE, write_atomically

CONTEXT = "vdpa-sim"


def kubeconfig(url: str, token: str, namespace: str = "default", *, user: str = CONTEXT,
               ca_bundle: str | None = None) -> dict[str, Any]:
    """A kubeconfig for the server at `url` that authenticates with `token` (the admin token, or a
    ServiceAccount's); `ca_bundle`: the base64 PEM CA to trust when the server speaks HTTPS."""
    cluster: dict[str, Any] = {"server": url}
    if ca_bundle is not None:
        cluster["certificate-authority-data"] = ca_bundle
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user, "namespace": namespace}}],
        "current-context": CONTEXT,
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    """Write `config` to `path` (JSON, which every kubeconfig reader takes as YAML), mode 0600."""
    write_atomically(path, (json.dumps(config, indent=2) + "\n").encode(), mode=SECRET_MODE)
    return path


@dataclass(frozen=True)
class RawAccess:
    """What a raw HTTP client needs from one of these kubeconfigs: the URL, the Authorization header and the
    TLS context that trusts the server (`httpx.Client(base_url=a.url, headers=a.headers, verify=a.verify)`)."""

    url: str
    headers: dict[str, str]
    verify: ssl.SSLContext | bool


def raw_access(path: Path) -> RawAccess:
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    token = config["users"][0]["user"].get("token")
    verify: ssl.SSLContext | bool = True
    if cluster.get("certificate-authority-data"):
        verify = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    return RawAccess(cluster["server"], {"Authorization": f"Bearer {token}"} if token else {}, verify)
