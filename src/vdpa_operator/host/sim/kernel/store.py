"""The simulated host on disk: `<root>/state.json`, rewritten atomically after each change under an fcntl lock
held around load-mutate-save, so several processes (a test, the daemon, the CNI server) share one host and a
restarted one finds it as it was; and the sysfs tree under `<root>/sys` and the char devices under `<root>/dev`,
rendered from the state after every change (only what the change touched: `tree.py`) and never read back.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.host.sim import tree
from vdpa_operator.host.sim.kernel.codec import StateEncoder
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.state import State, from_json

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
PENDING_MARKER = ".pending"
"""Present while delayed VFs are due to appear: a read must then let time pass (a change), not just read."""



class DamagedState(VdpaOperatorError):
    """The simulated host's state file is not one this code wrote (truncated, edited, another version)."""

    def __init__(self, root: Path, cause: Exception) -> None:
        super().__init__(f"{root / STATE_FILE}: not a simulated host's state ({type(cause).__name__}: {cause}); "
                         f"delete {root} to start again with a fresh simulated host")

class StateStore:
    """The state file of one root, for one process. `on_open` runs at the start of every outermost
    transaction, before its caller (time passing: delayed VFs appear).

    A change costs what it changes, not what the host holds: the state parsed from the file is kept with the
    file's text and read again only when another process rewrote it; a transaction changes that one state in
    place (an unexpected exception drops it, so the next one reads the file again); a commit encodes it again
    (only the objects that changed: `codec.py`) and writes only when the text differs; and the sysfs tree is
    updated piece by piece (`tree.Rendering`)."""

    def __init__(self, root: Path, on_open: Callable[[State], None]) -> None:
        self.root = root
        self._on_open = on_open
        self._lock = threading.RLock()
        self._state: State | None = None
        self._encoder = StateEncoder()
        self._parsed: tuple[str, State] | None = None
        """What the file showed when this process last read or wrote it, and that state."""
        self._rendering: tuple[str, tree.Rendering] | None = None
        """What the tree shows and the text of the state it shows, when this process knows it (None: compare
        with the disk at the next commit)."""

    def exists(self) -> bool:
        return (self.root / STATE_FILE).exists()

    def create(self, state: State) -> None:
        """Write a new host's state and render its tree."""
        self.root.mkdir(parents=True, exist_ok=True)
        text = self._write_state(state)
        self._parsed, self._rendering = (text, state), (text, tree.sync(self.root, state))

    def attach(self) -> None:
        """Make the tree show the state, comparing it with the disk in full: a crash between saving the state
        and rendering it left the tree behind."""
        with self.transaction() as state:
            assert self._parsed is not None
            self._rendering = None
            self._rendering = (self._parsed[0], tree.sync(self.root, state))

    @contextmanager
    def transaction(self) -> Iterator[State]:
        """Load, let the caller read or change, save when changed. Reentrant within a thread; exclusive across
        threads (RLock) and processes (flock). A KernelError still commits (faults were consumed) — rules
        raise before they change anything."""
        with self._lock:
            if self._state is not None:
                yield self._state
                return
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                state = self._read_state(render=True)
                self._state = state
                try:
                    self._on_open(state)
                    yield state
                except KernelError:
                    self._commit(state)
                    raise
                except BaseException:
                    self._forget()  # half changed: what the file shows is read again
                    raise
                else:
                    self._commit(state)
                finally:
                    self._state = None
            finally:
                os.close(fd)

    @contextmanager
    def reading(self) -> Iterator[State]:
        """For queries, which change nothing: the state as the file shows it, shared, without the commit of
        `transaction` (a device plugin asks several every 50 ms). Inside a transaction, its state; while
        delayed VFs are pending, a transaction (time passing is a change)."""
        with self._lock:
            if self._state is not None:
                yield self._state
                return
            if self.pending():
                with self.transaction() as state:
                    yield state
                return
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                yield self._read_state(render=False)
            finally:
                os.close(fd)

    def pending(self) -> bool:
        """Whether delayed VFs wait to appear (cheap: one stat)."""
        return (self.root / PENDING_MARKER).exists()

    def _read_state(self, *, render: bool) -> State:
        """The state the file shows, parsed again only when its text changed. `render`: also bring the kept
        rendering up to it (before a transaction changes the state in place), when there is one."""
        try:
            text = (self.root / STATE_FILE).read_text()
        except UnicodeDecodeError as exc:
            raise DamagedState(self.root, exc) from exc
        if self._parsed is None or self._parsed[0] != text:
            try:
                self._parsed = (text, from_json(json.loads(text)))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                raise DamagedState(self.root, exc) from exc
        state = self._parsed[1]
        if render and self._rendering is not None and self._rendering[0] != text:
            # another process changed the state and rendered its tree: ours is only brought along
            self._rendering[1].update(state)
            self._rendering = (text, self._rendering[1])
        return state

    def _forget(self) -> None:
        self._parsed = None
        self._rendering = None

    def _commit(self, state: State) -> None:
        assert self._parsed is not None
        previous = self._parsed[0]
        text = self._encoder.encode(state)
        if text == previous:
            return
        # The generation only moves here, so every change gives a new text. Keys are sorted and no other
        # object has a `generation`, so its first `"generation":` (quotes inside strings are escaped) is it.
        state.generation += 1
        text = text.replace(f'"generation":{state.generation - 1},', f'"generation":{state.generation},', 1)
        rendering = self._rendering[1] if self._rendering is not None else None
        self._parsed = self._rendering = None  # until both are written: a failure leaves them unknown
        self._write_state(state, text)
        self._rendering = (text, tree.sync(self.root, state, rendering))
        self._parsed = (text, state)

    def _write_state(self, state: State, text: str | None = None) -> str:
        text = self._encoder.encode(state) if text is None else text
        tmp = self.root / f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(text)
        os.replace(tmp, self.root / STATE_FILE)
        marker = self.root / PENDING_MARKER
        if any(pf.pending_numvfs for pf in state.pfs.values()):
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        return text

