"""Resource quantities as a pod asks for them: only whole counts matter here (extended resources are integers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SUFFIXES = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(text: Any) -> int:
    """A quantity as a whole number (`2`, `1k`, `1Ki`; a milli value rounds up); 0 when unreadable."""
    value = str(text).strip()
    try:
        if value.endswith("m"):
            return -(-int(value[:-1]) // 1000)
        for suffix in sorted(_SUFFIXES, key=len, reverse=True):
            if value.endswith(suffix):
                return int(value[: -len(suffix)]) * _SUFFIXES[suffix]
        return int(float(value))
    except ValueError:
        return 0


def extended(name: str) -> bool:
    """An extended resource: domain-prefixed, outside kubernetes.io (cpu, memory, hugepages are not)."""
    domain, sep, _ = name.partition("/")
    return bool(sep) and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def extended_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """Extended resources the pod's containers request (limits stand for requests, which must equal them),
    summed; init containers count by their largest request, as the scheduler counts them."""
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        for name, count in container_requests(container).items():
            total[name] = total.get(name, 0) + count
    for container in spec.get("initContainers") or []:
        for name, count in container_requests(container).items():
            total[name] = max(total.get(name, 0), count)
    return total


def container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: quantity(value) for name, value in merged.items() if extended(name) and quantity(value) > 0}
