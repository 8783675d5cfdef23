"""What the daemon keeps on the node between runs (upstream-operator.md §4.12), under one directory
(`/etc/sriov-operator` on a real node, inside the simulated host's root otherwise):

- `pci/<pf>`: the last applied `Interface` JSON per PF, the ownership marker that lets a reset touch only PFs
  the operator configured (upstream's exact layout, so a node moved from the Go operator keeps its records);
- `sno-initial-node-state.json`: the first status ever seen, the MTU and eswitch mode a reset returns to;
- `journal.json`: the apply in progress, so a daemon killed mid-apply knows to re-apply those PFs fully;
- `ovs-hw-offload`: present while `other_config:hw-offload` is on because this daemon set it.

Every write is atomic (temp file, fsync, rename): a kill -9 leaves the old file or the new one. A file damaged
anyway (a disk error, a hand edit, a journal written without fsync before a power cut) is moved aside and the
daemon goes on from what the node shows, with a warning naming the file; only a file it cannot read at all
(permissions, a directory in its place) stops it, with a StoreError that says so.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vdpa_operator.api.models import Interface, InterfaceExt
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.host.types import is_pci_address

logger = logging.getLogger(__name__)

DEFAULT_ROOT = "/etc/sriov-operator"
INITIAL_STATE = "sno-initial-node-state.json"
JOURNAL = "journal.json"
OVS_OFFLOAD_MARKER = "ovs-hw-offload"
SET_ASIDE = ".corrupt-"
"""A damaged file `<name>` is renamed `<name>.corrupt-<UTC time>`, kept for a post-mortem and never read again."""


class StoreError(VdpaOperatorError):
    """A file in the daemon's store cannot be read or written; names the file and what to do."""


class _Damaged(Exception):
    """The file exists and can be read, but what it holds is not what this daemon writes there."""


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

    @classmethod
    def from_json(cls, data: Any) -> Journal:
        """Raises _Damaged unless `data` is what `asdict` wrote: the fields, of their types, and no others."""
        if not isinstance(data, dict):
            raise _Damaged(f"not an apply journal (a JSON {type(data).__name__}, not an object)")
        known = {f.name for f in fields(cls)}
        missing = {"generation", "pfs", "total"} - set(data)
        if missing or set(data) - known:
            raise _Damaged(f"not an apply journal (fields {sorted(data)})")
        ints = all(isinstance(data.get(k, 0), int) and not isinstance(data.get(k, 0), bool)
                   for k in ("generation", "total", "done"))
        strings = isinstance(data.get("current", ""), str) and all(
            isinstance(v, list) and all(isinstance(i, str) for i in v) for v in (data["pfs"], data.get("history", [])))
        if not (ints and strings):
            raise _Damaged("not an apply journal (a field of the wrong type)")
        return cls(**data)


class DaemonStore:
    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self._notes: list[str] = []

    def take_notes(self) -> list[str]:
        """What was moved aside since the last call, one line each (the daemon reports them as events)."""
        notes, self._notes = self._notes, []
        return notes

    # --- PF records ----------------------------------------------------------------------------------------

    def records(self) -> dict[str, Interface]:
        """Every PF record, by PCI address. A damaged record is moved aside: that PF then counts as not
        configured by the operator until its next apply saves the record again."""
        directory = self.root / "pci"
        if not directory.is_dir():
            return {}
        found = {}
        for path in sorted(directory.iterdir()):
            if not is_pci_address(path.name):
                continue  # temporary files, files moved aside, anything not ours
            try:
                found[path.name] = self._record(path)
            except _Damaged as exc:
                self._set_aside(path, str(exc), "the PF counts as not configured by the operator (a reset leaves "
                                "it alone) until an apply saves its record again")
        return found

    def _record(self, path: Path) -> Interface:
        try:
            record = Interface.model_validate(self._read_json(path))
        except ValidationError as exc:
            raise _Damaged(f"not a PF record ({exc.error_count()} errors, first: {exc.errors()[0]['msg']})") \
                from exc
        if record.pci_address != path.name:
            raise _Damaged(f"the record of PF {record.pci_address}, not of {path.name}")
        return record

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
        """The checkpoint. A damaged one is moved aside and replaced by an empty one, not by a new checkpoint:
        the node may be configured by now, and a reset must not return a PF to that."""
        path = self.root / INITIAL_STATE
        if not path.exists():
            return {}
        try:
            data = self._read_json(path)
            try:
                interfaces = [InterfaceExt.model_validate(i) for i in data["interfaces"]]
            except (ValidationError, TypeError, KeyError) as exc:
                raise _Damaged("not a node status checkpoint") from exc
        except _Damaged as exc:
            self._set_aside(path, str(exc), "a reset now returns a PF to MTU 1500 and legacy, as without a "
                            "checkpoint")
            self._write_json(path, {"interfaces": []})
            return {}
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
        """The apply in progress, None when there is none. A damaged journal is moved aside: the plan sees what
        an interrupted apply left on the node without it."""
        path = self.root / JOURNAL
        if not path.exists():
            return None
        try:
            return Journal.from_json(self._read_json(path))
        except _Damaged as exc:
            self._set_aside(path, str(exc), "the next plan starts from what the node shows")
            return None

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
        """Raises _Damaged for a file that is not JSON (truncated, empty, binary), StoreError for one that cannot
        be read at all."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror}); check its permissions and that it is a "
                             "file") from exc
        if not data.strip():
            raise _Damaged("empty")
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise _Damaged(f"not JSON ({exc.msg} at line {exc.lineno})") from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, nested beyond what we ever write
            raise _Damaged(f"not JSON ({type(exc).__name__})") from exc

    def _set_aside(self, path: Path, why: str, consequence: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = path.with_name(f"{path.name}{SET_ASIDE}{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}{SET_ASIDE}{stamp}.{n}")
        try:
            os.replace(path, target)
        except OSError as exc:
            raise StoreError(f"{path}: {why}, and it cannot be moved aside ({exc.strerror}); delete it") from exc
        note = f"{path}: {why}; moved to {target.name}: {consequence}"
        logger.warning("%s", note)
        self._notes.append(note)

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
