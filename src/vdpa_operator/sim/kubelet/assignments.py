"""Which device of which resource each pod holds (kubelet's podDevices), kept in a checkpoint file so a kubelet
restarted under running pods neither hands their devices out again nor forgets to free them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from vdpa_operator.fileio import write_atomically
from vdpa_operator.sim.kubelet.errors import KubeletError

CHECKPOINT = "sim_kubelet_checkpoint.json"


class Assignments:
    def __init__(self, directory: Path) -> None:
        self.file = directory / CHECKPOINT
        self.by_pod: dict[str, dict[str, list[str]]] = {}
        """pod UID → resource → device IDs."""
        if self.file.is_file():
            try:
                self.by_pod = json.loads(self.file.read_text())
            except ValueError:
                self.by_pod = {}

    def used(self, resource: str) -> set[str]:
        return {i for held in self.by_pod.values() for i in held.get(resource, [])}

    def of(self, pod_uid: str) -> dict[str, list[str]]:
        return self.by_pod.get(pod_uid, {})

    def take(self, pod_uid: str, resource: str, count: int, healthy: Iterable[str],
             preferred: Iterable[str] = ()) -> list[str]:
        """`count` free healthy devices for the pod (the preferred ones first); kept once taken. A pod that
        already holds devices of the resource keeps them (a restarted kubelet, a retried start)."""
        held = self.of(pod_uid).get(resource)
        if held:
            return held
        used = self.used(resource)
        free = [i for i in healthy if i not in used]
        wanted = [i for i in preferred if i in free][:count]
        wanted += [i for i in free if i not in wanted][:count - len(wanted)]
        if len(wanted) < count:
            raise KubeletError(f"{resource}: {count} wanted, {len(free)} free of the healthy devices "
                               f"({len(used)} in use)")
        self.by_pod.setdefault(pod_uid, {})[resource] = wanted
        self._save()
        return wanted

    def release(self, pod_uid: str) -> dict[str, list[str]]:
        freed = self.by_pod.pop(pod_uid, {})
        if freed:
            self._save()
        return freed

    def _save(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.file, json.dumps(self.by_pod, sort_keys=True).encode(), mode=0o644)
