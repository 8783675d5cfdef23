"""One node's daemon core, synchronous: observe, plan, apply, and the status that reports it. Used as it is
by `vdpactl node …` and from a worker thread by the long-running daemon (`daemon.reconcile`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from vdpa_operator.api.models import InterfaceExt, SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import SupportedNics
from vdpa_operator.daemon.apply import Applier, ApplyResult, ProgressCallback
from vdpa_operator.daemon.discover import discover
from vdpa_operator.daemon.observed import Observation
from vdpa_operator.daemon.plan import Plan, plan
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.port import NUMVFS_TIMEOUT, Host


@dataclass
class NodeAgent:
    host: Host
    store: DaemonStore
    nics: SupportedNics
    dev_mode: bool = False
    numvfs_timeout: float = NUMVFS_TIMEOUT

    def observe(self) -> Observation:
        """Discover, and read the journal of an interrupted apply; the first discovery ever on this node is kept
        as the reset checkpoint (§4.1). Damaged files of the store are moved aside on the way (`notes`)."""
        observed = discover(self.host, self.nics, self.store, dev_mode=self.dev_mode)
        if self.store.save_initial_state_once(list(observed.interfaces)):
            observed = replace(observed, initial={i.pci_address: i for i in observed.interfaces})
        journal = self.store.journal()
        return replace(observed, interrupted=tuple(journal.pfs) if journal is not None else (),
                       notes=(*observed.notes, *self.store.take_notes()))

    def plan(self, spec: SriovNetworkNodeStateSpec, observed: Observation) -> Plan:
        """Raises InvalidSpec for values the daemon cannot act on, PlanError for a spec this node cannot take."""
        vf_ids = [n.vf_device for n in self.nics.entries]
        return plan(spec, observed, vf_device_ids=vf_ids, force=observed.interrupted)

    def apply(self, planned: Plan, observed: Observation, *, generation: int = 0,
              on_step: ProgressCallback | None = None) -> ApplyResult:
        applier = Applier(self.host, self.store, on_step=on_step, numvfs_timeout=self.numvfs_timeout)
        return applier.apply(planned, observed, generation=generation)


def status_patch(interfaces: tuple[InterfaceExt, ...] | list[InterfaceExt], sync_status: str,
                 last_sync_error: str) -> dict[str, Any]:
    """The NodeState status as a JSON merge patch: interfaces in upstream's JSON, and `lastSyncError` removed
    (null) when empty, as upstream's MergeFrom diff does."""
    return {
        "interfaces": [i.to_go_dict() for i in interfaces],
        "syncStatus": sync_status,
        "lastSyncError": last_sync_error or None,
    }


def status_changed(before: list[InterfaceExt], after: tuple[InterfaceExt, ...] | list[InterfaceExt]) -> bool:
    """Upstream `shouldUpdateStatus`: a PF appeared, went, or changed a PF-level field; VFs are left out (a VF
    moved into a pod loses its name, which is no reason to write)."""
    if len(before) != len(after):
        return True
    for old, new in zip(before, after, strict=True):
        if old.pci_address != new.pci_address:
            return True
        if old.model_copy(update={"vfs": []}).to_go_dict() != new.model_copy(update={"vfs": []}).to_go_dict():
            return True
    return False
