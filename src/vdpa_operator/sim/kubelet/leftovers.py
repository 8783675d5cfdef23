"""What a kubelet that died without cleaning up (SIGKILL, a crash) left on the node, undone by the next one.

Each pod's sandbox is journaled in `<pods dir>/<uid>/sandbox.json` as it is built (network namespace, CNI
attachment and result, container process groups). At start, before any pod is run, every journal found is
undone as `PodWorker.stop` would have: processes killed, CNI DEL, devices released, the namespace deleted.
The pods themselves are then started afresh by the sync loop, as a kubelet restarted without a runtime to
reattach to would."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vdpa_operator.fileio import write_atomically
from vdpa_operator.sim.kubelet import multus
from vdpa_operator.sim.kubelet.assignments import Assignments
from vdpa_operator.sim.kubelet.mounts import node_view
from vdpa_operator.sim.kubelet.settings import KubeletSettings

logger = logging.getLogger(__name__)

JOURNAL = "sandbox.json"


def record(pod_dir: Path, pod: tuple[str, str, str], netns_name: str, netns_path: str, container_id: str,
           attachment: multus.Attachment | None, cni_result: dict[str, Any], process_groups: list[int]) -> None:
    pod_dir.mkdir(parents=True, exist_ok=True)
    body = {"pod": list(pod), "netnsName": netns_name, "netnsPath": netns_path, "containerID": container_id,
            "attachment": asdict(attachment) if attachment is not None else None, "cniResult": cni_result,
            "processGroups": process_groups}
    write_atomically(pod_dir / JOURNAL, json.dumps(body).encode(), mode=0o600)


async def clean(settings: KubeletSettings, assignments: Assignments) -> list[str]:
    """Undo every journaled sandbox under the pods directory; the pods (namespace/name) cleaned."""
    cleaned = []
    for journal in sorted(settings.pods_dir.glob(f"*/{JOURNAL}")):
        try:
            body = json.loads(journal.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("%s: unreadable (%s); removing the pod's directory only", journal, exc)
            body = {}
        uid = journal.parent.name
        namespace, name, _ = body.get("pod") or ("?", "?", uid)
        for group in body.get("processGroups") or []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(group), signal.SIGKILL)
        if body.get("attachment"):
            raw = body["attachment"]
            attachment = multus.Attachment(raw["network"], tuple(raw["plugins"]), raw["resource"], raw["device_id"],
                                           raw["device_info_file"])
            call = multus.CniCall(settings.cni_bin_dir, body["netnsPath"], body["containerID"], "eth0",
                                  (namespace, name, uid), tuple(node_view(settings.root)),
                                  f"/var/run/netns/{settings.node_netns}")
            await multus.delete(call, attachment, body.get("cniResult") or {})
        for owner in [o for o in assignments.by_pod if o.startswith(f"{uid}/")]:
            assignments.release(owner)
        if body.get("netnsName"):
            subprocess.run(["ip", "netns", "del", body["netnsName"]], check=False, capture_output=True)
        shutil.rmtree(journal.parent, ignore_errors=True)
        logger.info("cleaned up pod %s/%s left by an earlier kubelet", namespace, name)
        cleaned.append(f"{namespace}/{name}")
    return cleaned
