"""Durable storage of a store's objects in `<data-dir>/state.db`: a write is acknowledged only once it is on
disk, and a resourceVersion once handed out is never handed out again, whatever kills the server.

Why SQLite (WAL mode, `synchronous=FULL`, the standard library's `sqlite3`) and not a log of our own: on the
development VM (ext4 on virtio, 2 cores shared; `bench/apiserver_durable.py --options`), an append-only log
with fdatasync commits 1.5 to 2.5 times as many writes per second as SQLite (about 5,500-7,300 against
3,300-4,500 at one write a commit; 37,000-54,000 against 16,000-21,000 at 8), but the server needs far fewer:
at about 2,000 durable creates/s it commits some 650 times a second (about three creates a commit), and what bounds
it is the disk's sync latency, which both pay alike. SQLite brings what a home-made log would have to grow and
get right: recovery from a torn or partial commit (checksummed WAL frames), a table of current objects instead
of snapshot-plus-log compaction, and an integrity check that names a damaged file.

Group commit: the store calls `record()` for each change under its lock (cheap: the change is queued; objects
are copy-on-write, so they are encoded later), and a write waits for `durable()` (or `wait()`, without an event
loop) before it is answered. Commits run one at a time on a thread of their own, each taking everything queued
so far into one transaction, so the event loop goes on serving while the disk syncs, and the writes that came
meanwhile share the next sync. A commit that fails fails the writes waiting on it (500, as kube-apiserver
answers when etcd fails) and its changes are retried with the next one.

resourceVersions: reads and watch events show a change before its commit, so a crash can lose a version a
client has seen. The database keeps `reserved`, a version no handed-out version exceeds, raised (synchronously,
once every RESERVE versions) before a version above it is used; a restart carries on above it. A clean
`close()` lowers it to the last version, so after a clean restart the versions carry on by one.

Layout (`PRAGMA user_version` = FORMAT): `objects(resource, namespace, name, body)` with the object's JSON,
and `meta(key, value)` with `resourceVersion` (last committed) and `reserved`. A format-1 `state.json` (the
write-behind snapshot this replaces) is migrated on first start and kept as `state.json.format1`. A file that
cannot be read is a `DataDirError` naming it and what to do. A `lock` file (flock) keeps a second server off
the same directory. The watch event log is not kept: after a restart, a watch from an older resourceVersion
gets 410 Gone and its client re-lists.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

from vdpa_operator.host.errors import VdpaOperatorError

log = logging.getLogger(__name__)

DB_FILE = "state.db"
LOCK_FILE = "lock"
LEGACY_FILE = "state.json"
LEGACY_FORMAT = 1
"""`state.json`: {"format": 1, "resourceVersion": N, "resources": {group_resource: [objects]}}."""
FORMAT = 2
RESERVE = 10_000
"""resourceVersions reserved at a time: the most a restart after a crash skips."""

_SCHEMA = f"""
CREATE TABLE objects (resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
                      PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('resourceVersion', 0), ('reserved', 0);
PRAGMA user_version = {FORMAT};
"""

Key = tuple[str, str, str]
"""(group_resource, namespace, name)."""
State = dict[str, Any]
"""{"resourceVersion": N, "resources": {group_resource: [objects]}}, what `Store` restores."""


class DataDirError(VdpaOperatorError):
    """The data directory cannot be used: which file, why, and what to do."""


class StorageError(VdpaOperatorError):
    """A change could not be committed to the data directory (the write's outcome is unknown)."""


def _move_aside(path: Path) -> str:
    return f"move it aside (mv {path} {path}.bad) to start empty, or restore it from a backup"


class Persister:
    """The data directory of one store: `state` as loaded, then `record()` per change and `durable()` or
    `wait()` before a write is answered.

    Opening it takes the directory's lock, migrates a format-1 `state.json`, checks the database and loads it;
    `close()` commits what is queued and lets go of the directory (a later `record()` takes it again)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / DB_FILE
        self._lock = threading.Lock()
        """Guards the queue and the commits to come (the store's lock is held by `record()` only)."""
        self._pending: dict[Key, dict[str, Any] | None] = {}
        self._pending_rv = 0
        self._durable_rv = 0
        self._reserved = 0
        self._committer: concurrent.futures.ThreadPoolExecutor | None = None
        self._next_commit: concurrent.futures.Future[None] | None = None
        """The commit not started yet: it will take every change queued until it starts."""
        self._db_lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self.commits = 0
        """Transactions committed so far (tests and benchmarks read it)."""
        self.state = self._open()

    # --- what the store calls ---------------------------------------------------------------------------------

    def record(self, resource: str, namespace: str, name: str, obj: dict[str, Any] | None, rv: int) -> None:
        """Queue one change (`obj` None: deleted) made at `rv`. Called under the store's lock, in version order;
        `obj` must never change afterwards. Raises `StorageError` when `rv` cannot be reserved."""
        if self._db is None:
            self.state = self._open()
        if rv > self._reserved:
            self._reserve(rv + RESERVE)
        with self._lock:
            self._pending[(resource, namespace, name)] = obj
            self._pending_rv = rv

    def durable(self, rv: int) -> Awaitable[None] | None:
        """Something to await until every change up to `rv` is committed, or None when it already is."""
        if rv <= self._durable_rv:
            return None
        with self._lock:
            if self._next_commit is None:
                if self._committer is None:
                    self._committer = concurrent.futures.ThreadPoolExecutor(1, f"commit-{self.directory.name}")
                self._next_commit = self._committer.submit(self._commit_next)
            return asyncio.wrap_future(self._next_commit)

    def _commit_next(self) -> None:
        """On the committer thread: from now on, a change needs the commit after this one."""
        with self._lock:
            self._next_commit = None
        self.commit()

    def wait(self, rv: int) -> None:
        """Commit now unless every change up to `rv` already is (raises `StorageError` if the commit fails)."""
        if rv > self._durable_rv:
            self.commit()

    def commit(self) -> None:
        """Commit every queued change in one transaction. On failure the changes stay queued for the next."""
        with self._db_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
                rv = self._pending_rv
            if not batch:
                return
            try:
                rows = [(*key, json.dumps(obj, separators=(",", ":")))
                        for key, obj in batch.items() if obj is not None]
                gone = [key for key, obj in batch.items() if obj is None]
                db = self._connection()
                with _transaction(db):
                    db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)
                    db.executemany("DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?", gone)
                    db.execute("UPDATE meta SET value = ? WHERE key = 'resourceVersion'", (rv,))
            except (sqlite3.Error, OSError, ValueError) as err:
                with self._lock:
                    self._pending = {**batch, **self._pending}  # retried with the next commit
                log.error("cannot commit the changes up to resourceVersion %d to %s: %s", rv, self.path, err)
                raise StorageError(f"{self.path}: the change was not saved: {err}") from err
            with self._lock:
                self._durable_rv = max(self._durable_rv, rv)
            self.commits += 1

    def close(self) -> None:
        """Commit what is queued, mark the last version as the only one used, and let go of the directory."""
        with self._lock:
            committer, self._committer = self._committer, None
        if committer is not None:
            committer.shutdown()
        with self._db_lock:
            if self._db is None:
                return
            unsaved = False
            try:
                self.commit()
            except StorageError:
                unsaved = True  # and the versions above the last commit stay reserved
            db, self._db = self._db, None
            try:
                if not unsaved:  # no version above the last commit was used: a restart carries on by one
                    with _transaction(db):
                        db.execute("UPDATE meta SET value = ? WHERE key = 'reserved'", (self._durable_rv,))
            except sqlite3.Error as err:
                log.error("cannot release the reserved resourceVersions in %s: %s", self.path, err)
            finally:
                db.close()
                if self._lock_fd is not None:
                    os.close(self._lock_fd)  # releases the flock
                    self._lock_fd = None

    # --- opening ----------------------------------------------------------------------------------------------

    def _open(self) -> State:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock_fd = self._lock_fd = _lock(self.directory / LOCK_FILE)
        except OSError as err:
            raise DataDirError(f"{self.directory}: cannot use it as a data directory: {err.strerror or err}") from None
        try:
            legacy = self.directory / LEGACY_FILE
            if not self.path.exists():
                _create(self.path, _read_legacy(legacy) if legacy.exists() else None)
            if legacy.exists():
                os.replace(legacy, legacy.with_name(f"{LEGACY_FILE}.format{LEGACY_FORMAT}"))
                log.info("migrated %s into %s", legacy, self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            state = _load(self._db, self.path)  # before anything is written to it
            _durably(self._db, self.path)
        except BaseException:
            if self._db is not None:
                self._db.close()
                self._db = None
            os.close(lock_fd)  # releases the flock
            self._lock_fd = None
            raise
        self._durable_rv = self._pending_rv = self._reserved = state["resourceVersion"]
        return state

    # --- committing -------------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the data directory was closed")
        return self._db

    def _reserve(self, upto: int) -> None:
        """Make `upto` the highest version a restart must stay above, on disk, before any version up to it is
        handed out."""
        try:
            with self._db_lock, _transaction(self._connection()) as db:
                db.execute("UPDATE meta SET value = ? WHERE key = 'reserved'", (upto,))
        except sqlite3.Error as err:
            raise StorageError(f"{self.path}: cannot reserve resourceVersions: {err}") from err
        self._reserved = upto


# --- the database file ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirError(f"{path.parent}: in use by another API server; stop it, or give this one another "
                           "--data-dir") from None
    return fd


def _durably(db: sqlite3.Connection, path: Path) -> None:
    """WAL mode with a full sync on every commit: a commit survives a power cut."""
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as err:
        raise DataDirError(f"{path}: cannot write it ({err}); {_move_aside(path)}") from None


def _create(path: Path, state: State | None) -> None:
    """A new database at `path` holding `state`, made beside it and renamed into place, so a crash meanwhile
    leaves no half-made file there."""
    fresh = path.with_name(f".{path.name}.new")
    fresh.unlink(missing_ok=True)
    db = sqlite3.connect(fresh, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = FULL")
        db.executescript(_SCHEMA)
        if state is not None:
            with _transaction(db):
                db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", (
                    (resource, _text(obj, ("metadata", "namespace")), _text(obj, ("metadata", "name")),
                     json.dumps(obj, separators=(",", ":")))
                    for resource, objects in state["resources"].items() for obj in objects))
                db.execute("UPDATE meta SET value = ? WHERE key IN ('resourceVersion', 'reserved')",
                           (state["resourceVersion"],))
    finally:
        db.close()
    os.replace(fresh, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _load(db: sqlite3.Connection, path: Path) -> State:
    """Every stored object, checked: a damaged or foreign file is a `DataDirError`, never a traceback."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > FORMAT:
            raise DataDirError(f"{path}: written by a newer version (format {version}; this one reads {FORMAT}); "
                               "run that version, or " + _move_aside(path))
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise DataDirError(f"{path}: damaged ({'; '.join(problems[:3])}); {_move_aside(path)}")
        if version != FORMAT:
            raise DataDirError(f"{path}: empty or not an API server database (format {version}, not {FORMAT}); "
                               + _move_aside(path))
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        rows = db.execute("SELECT resource, namespace, name, body FROM objects").fetchall()
    except sqlite3.DatabaseError as err:
        raise DataDirError(f"{path}: not a database this server can read ({err}); {_move_aside(path)}") from None
    resources: dict[str, list[dict[str, Any]]] = {}
    for resource, namespace, name, body in rows:
        try:
            obj = json.loads(body)
        except ValueError as err:
            raise DataDirError(f"{path}: the stored {resource} {namespace}/{name} is not JSON ({err}); "
                               + _move_aside(path)) from None
        resources.setdefault(resource, []).append(obj)
    try:
        rv = max(int(meta["resourceVersion"]), int(meta["reserved"]))
    except (KeyError, TypeError, ValueError):
        raise DataDirError(f"{path}: no resourceVersion in its meta table; {_move_aside(path)}") from None
    return {"resourceVersion": rv, "resources": resources}


def _read_legacy(path: Path) -> State:
    """A format-1 `state.json`, checked, for migration."""
    what_to_do = _move_aside(path)
    try:
        state = json.loads(path.read_bytes())
    except json.JSONDecodeError as err:
        raise DataDirError(f"{path}: line {err.lineno} column {err.colno}: {err.msg} (truncated or damaged); "
                           + what_to_do) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataDirError(f"{path}: cannot read it ({err}); {what_to_do}") from None
    if not isinstance(state, dict) or state.get("format") != LEGACY_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise DataDirError(f"{path}: not a state file of format {LEGACY_FORMAT} (found {found!r}); {what_to_do}")
    resources, rv = state.get("resources", {}), state.get("resourceVersion", 0)
    if not (isinstance(resources, dict) and isinstance(rv, int) and all(
            isinstance(objects, list) and all(isinstance(o, dict) and _text(o, ("metadata", "name"))
                                              for o in objects) for objects in resources.values())):
        raise DataDirError(f"{path}: \"resources\" must map each resource to a list of named objects and "
                           f"\"resourceVersion\" must be an integer; {what_to_do}")
    return {"resourceVersion": rv, "resources": resources}


def _text(obj: Any, path: tuple[str, ...]) -> str:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj if isinstance(obj, str) else ""
