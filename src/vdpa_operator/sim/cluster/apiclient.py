"""The few API calls `up` and `status` make as the cluster's admin (the kubeconfig the API server wrote): read
Nodes and Pods, merge-patch a Node. Raw HTTP over the server's TLS, as `sim.apiserver.kubeconfigs.raw_access`
sets it up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2

from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.sim.apiserver.kubeconfigs import raw_access


class ApiError(VdpaOperatorError):
    pass


class AdminClient:
    def __init__(self, kubeconfig: Path, timeout: float = 5.0) -> None:
        access = raw_access(kubeconfig)
        self.url = access.url
        self._http = httpx2.Client(base_url=access.url, headers=access.headers, verify=access.verify,
                                   timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, path: str, **params: str) -> dict[str, Any]:
        response = self._http.get(path, params=params)
        if response.status_code != 200:
            raise ApiError(f"GET {self.url}{path}: {response.status_code} {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body

    def healthy(self) -> bool:
        try:
            return self._http.get("/version").status_code == 200
        except httpx2.HTTPError:
            return False

    def nodes(self) -> dict[str, dict[str, Any]]:
        return {item["metadata"]["name"]: item for item in self.get("/api/v1/nodes").get("items", [])}

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/api/v1/pods").get("items", [])
        return items

    def patch_node(self, name: str, patch: dict[str, Any]) -> None:
        self.patch(f"/api/v1/nodes/{name}", patch)

    def items(self, path: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(path).get("items", [])
        return found

    def patch(self, path: str, patch: dict[str, Any]) -> None:
        response = self._http.patch(path, content=json.dumps(patch),
                                    headers={"Content-Type": "application/merge-patch+json"})
        if response.status_code != 200:
            raise ApiError(f"PATCH {path}: {response.status_code} {response.text[:300]}")

    def create(self, path: str, body: dict[str, Any]) -> bool:
        """POST; False when it exists already (409)."""
        response = self._http.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
        if response.status_code == 409:
            return False
        if response.status_code not in (200, 201):
            raise ApiError(f"POST {path}: {response.status_code} {response.text[:300]}")
        return True

    def delete(self, path: str) -> None:
        response = self._http.delete(path)
        if response.status_code not in (200, 202, 404):
            raise ApiError(f"DELETE {path}: {response.status_code} {response.text[:300]}")


def ready(node: dict[str, Any]) -> str:
    """The Node's Ready condition: True, False or Unknown."""
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "Unknown"
