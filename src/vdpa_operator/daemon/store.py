"""What the daemon keeps on the node between runs (upstream-operator.md §4.12), under one directory
(`/etc/sriov-operator` on a real node, inside the simulated host's root otherwise):

- `pci/<pf>`: the last applied `Interface` JSON per PF, the ownership marker that lets a reset touch only PFs
  the operator configured (upstream's exact layout, so a node moved from the Go operator keeps its records);
- `sno-initial-node-state.json`: the first status ever seen, the MTU and eswitch mode a reset returns to;
- `journal.json`: the apply in progress, so a daemon killed mid-apply knows to re-apply those PFs fully;
- `ovs-hw-offload`: present while `other_config:hw-offload` is on because this daemon set it.

Every write is atomic (temp file, fsync, rename): a kill -9 leaves the old file or the new one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vdpa_operator.api.models import Interface, InterfaceExt
from vdpa_operator.errors import VdpaOperatorError

DEFAULT_ROOT = "/etc/sriov-operator"
INITIAL_STATE = "sno-initial-node-state.json"
JOURNAL = "journal.json"
OVS_OFFLOAD_MARKER = "ovs-hw-offload"


class StoreError(VdpaOperatorError):
    """A file in the daemon's store cannot be read or written; names the file and what to do."""


@dataclass
class Journal:
    """The apply in progress: which PFs it touches and how far it got."""

    generation: int
    pfs: list[str]
    total: int
    done: int = 0
    current: str = ""
    history: list[str] = field(default_factory=list)
    """Descriptions of interrupted applies this journal replaced (newest last), for the restart report."""


class DaemonStore:
    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    # --- PF records ----------------------------------------------------------------------------------------

    def records(self) -> dict[str, Interface]:
        """Every PF record, by PCI address. A record that cannot be parsed is an error naming the file."""
        directory = self.root / "pci"
        if not directory.is_dir():
            return {}
        found = {}
        for path in sorted(directory.iterdir()):
            if path.name.startswith("."):
                continue
            data = self._read_json(path)
            try:
                found[path.name] = Interface.model_validate(data)
            except ValidationError as exc:
                raise StoreError(f"{path}: not a PF record ({exc.error_count()} errors, first: "
                                 f"{exc.errors()[0]['msg']}); delete the file to forget this PF") from exc
        return found

    def save_record(self, iface: Interface) -> None:
        self._write_json(self.root / "pci" / iface.pci_address, iface.to_go_dict())

    def delete_record(self, pci_address: str) -> None:
        (self.root / "pci" / pci_address).unlink(missing_ok=True)

    def clear_records(self) -> None:
        """Upstream `ClearPCIAddressFolder`: a node whose first spec is empty owns no PF."""
        directory = self.root / "pci"
        if directory.is_dir():
            for path in directory.iterdir():
                path.unlink()

    # --- initial state -------------------------------------------------------------------------------------

    def initial_state(self) -> dict[str, InterfaceExt]:
        path = self.root / INITIAL_STATE
        if not path.exists():
            return {}
        data = self._read_json(path)
        try:
            interfaces = [InterfaceExt.model_validate(i) for i in data.get("interfaces", [])]
        except (ValidationError, AttributeError) as exc:
            raise StoreError(f"{path}: not a node status checkpoint; delete it to take a new one") from exc
        return {i.pci_address: i for i in interfaces}

    def save_initial_state_once(self, interfaces: list[InterfaceExt]) -> bool:
        """Upstream writes the checkpoint once, the first time the daemon ever runs on the node."""
        path = self.root / INITIAL_STATE
        if path.exists():
            return False
        self._write_json(path, {"interfaces": [i.to_go_dict() for i in interfaces]})
        return True

    # --- journal -------------------------------------------------------------------------------------------

    def journal(self) -> Journal | None:
        path = self.root / JOURNAL
        if not path.exists():
            return None
        data = self._read_json(path)
        try:
            return Journal(**data)
        except TypeError as exc:
            raise StoreError(f"{path}: not an apply journal; delete it (the next apply re-checks everything)") \
                from exc

    def write_journal(self, journal: Journal) -> None:
        self._write_json(self.root / JOURNAL, asdict(journal), sync=False)

    def clear_journal(self) -> None:
        (self.root / JOURNAL).unlink(missing_ok=True)

    # --- OVS ownership -------------------------------------------------------------------------------------

    def owns_ovs_offload(self) -> bool:
        return (self.root / OVS_OFFLOAD_MARKER).exists()

    def set_owns_ovs_offload(self, owned: bool) -> None:
        path = self.root / OVS_OFFLOAD_MARKER
        if owned:
            self._write_json(path, {"other_config": {"hw-offload": "true"}})
        else:
            path.unlink(missing_ok=True)

    # --- files ---------------------------------------------------------------------------------------------

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); delete the file and the "
                             "daemon re-creates it") from exc
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror})") from exc

    def _write_json(self, path: Path, data: Mapping[str, Any] | list[Any], *, sync: bool = True) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"{path}: cannot write ({exc.strerror}); check that {path.parent} is writable") \
                from exc
