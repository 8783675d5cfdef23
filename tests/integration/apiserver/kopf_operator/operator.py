"""A tiny kopf operator, run by test_kopf.py against the embedded API server: it proves kopf works unchanged
(login from a kubeconfig, discovery, watch, status and annotation patches, events)."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.login()
def login(**kwargs: Any) -> Any:
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="test.kopf.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="test.kopf.dev")
    settings.watching.server_timeout = 5


@kopf.on.create("sriovnetwork.openshift.io", "v1", "sriovnetworknodepolicies")
def created(spec: dict[str, Any], patch: kopf.Patch, **_: Any) -> None:
    # Not a handler result: that would go to status.created, which the policy's structural schema prunes (as a
    # real API server does).
    patch.metadata.setdefault("annotations", {})["test.kopf.dev/seen"] = f"{spec['resourceName']}/{spec['deviceType']}"


@kopf.on.update("sriovnetwork.openshift.io", "v1", "sriovnetworknodepolicies", field="spec.numVfs")
def resized(old: Any, new: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.metadata.setdefault("annotations", {})["test.kopf.dev/numvfs"] = f"{old}->{new}"
