"""`Ovs` over OVSDB with ovsdbapp: `other_config`/`external_ids`, bridges and ports (Port other_config,
Interface external_ids and mtu_request).

Why ovsdbapp: its commands mirror `ovs-vsctl`, reads come from the IDL's local cache (research/ecosystem.md
§4.3: 100 reads in 3 ms), and the connection runs on its own thread. Things to know about it:

- The Open_vSwitch API behaves like `ovs-vsctl` without `--no-wait`: every write bumps `next_cfg` and waits until
  ovs-vswitchd reports `cur_cfg`. Without a running vswitchd the write *is committed* but the call ends in a
  timeout after `timeout` seconds (reported as HostTimeout saying so). A port deletion here does not wait
  (`--no-wait`): the userspace datapath takes ~16 ms to let a port go, and a CNI DEL has no use for the wait.
- `Backend` keeps its connection in a *class* attribute, so every `impl_idl.OvsdbIdl` in a process would share
  the first connection ever made, whatever its remote. Each `OvsdbOvs` therefore builds its own subclass.
- After adding a port, ovsdbapp checks that vswitchd opened the interface; when it did not (no such netdev) it
  only logs. This adapter reads the Interface's `error` column back and logs it once as a warning, as
  `ovs-vsctl` prints a warning and still exits 0; vswitchd keeps retrying when the netdev appears.

Rows used (vswitch.ovsschema)::

    Open_vSwitch (one row): other_config, external_ids {string: string}, next_cfg, cur_cfg
    Bridge: name, datapath_type ("" = system, "netdev" = userspace), ports [Port]
    Port:   name, interfaces [Interface], other_config   (a bridge's own port carries the bridge's name)
    Interface: name, type, external_ids {string: string}, mtu_request [0..1 integer], ofport, error

`add_port` writes the Port, its Interface and their columns in one transaction, so OVN-Kubernetes' ovn-controller
never sees an Interface without its `iface-id` (nor a port without `transient=true`).

The connection is made on first use; `close()` stops its thread. Failures are HostError subclasses, mapped in
`_host_error`.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from ovsdbapp import exceptions as ovsdbapp_exceptions  # type: ignore[import-untyped]
from ovsdbapp.backend.ovs_idl import connection as ovs_connection  # type: ignore[import-untyped]
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.backend.ovs_idl import transaction as ovs_transaction
from ovsdbapp.schema.open_vswitch import impl_idl  # type: ignore[import-untyped]

from vdpa_operator.host.errors import (
    AlreadyExists,
    DeviceNotFound,
    HostError,
    HostTimeout,
)
from vdpa_operator.host.types import OvsPort

logger = logging.getLogger(__name__)

DEFAULT_REMOTE = "unix:/var/run/openvswitch/db.sock"
"""Upstream's `--ovs-socket-path` default."""
_CONNECT_HINT = ("start Open vSwitch (systemctl start openvswitch-switch: ovsdb-server and ovs-vswitchd), "
                 "or point the OVSDB remote at its socket")
_VSWITCHD_HINT = ("the change was committed to OVSDB, but ovs-vswitchd did not apply it in time: "
                  "is ovs-vswitchd running?")

T = TypeVar("T")


def _unix_path(remote: str) -> str | None:
    return remote[len("unix:"):] if remote.startswith("unix:") else None


def connect_ovs(remote: str = DEFAULT_REMOTE, timeout: float = 10) -> OvsdbOvs | None:
    """An `OvsdbOvs` for `remote`, or None when it is a unix socket that does not exist (no OVS here).
    Does not connect yet; the first call does."""
    path = _unix_path(remote)
    if path is not None and not os.path.exists(path):
        logger.debug("no OVSDB socket at %s", path)
        return None
    return OvsdbOvs(remote, timeout)


def _optional_int(column: Any) -> int | None:
    """An optional OVSDB integer column as the IDL shows it: [] or [n]."""
    return int(column[0]) if column else None


def _host_error(exc: Exception, op: str, target: str) -> HostError:
    """The one translation from ovsdbapp failures to HostError."""
    if isinstance(exc, HostError):
        return exc
    if isinstance(exc, ovsdbapp_exceptions.TimeoutException):
        return HostTimeout(op, target, errno.ETIMEDOUT, hint=_VSWITCHD_HINT, detail=str(exc))
    if isinstance(exc, idlutils.RowNotFound):
        return DeviceNotFound(op, target, errno.ENOENT, detail=str(exc))
    return HostError(op, target, detail=f"{type(exc).__name__}: {exc}")


class OvsdbOvs:
    """The `Ovs` Protocol over one OVSDB remote (`unix:/path`, `tcp:host:port`)."""

    def __init__(self, remote: str = DEFAULT_REMOTE, timeout: float = 10) -> None:
        self.remote = remote
        self.timeout = timeout
        self._api: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OvsdbOvs({self.remote!r})"

    # --- connection --------------------------------------------------------------------------------------------

    def _connect(self) -> Any:
        with self._lock:
            if self._api is not None:
                return self._api
            op = "connect to OVSDB"
            path = _unix_path(self.remote)
            if path is not None and not os.path.exists(path):
                raise HostError(op, self.remote, errno.ENOENT, hint=_CONNECT_HINT,
                                detail=f"{path} does not exist")
            try:
                idl = ovs_connection.OvsdbIdl.from_server(self.remote, "Open_vSwitch")
                conn = ovs_connection.Connection(idl=idl, timeout=self.timeout)
                # A class of our own: ovsdbapp keeps the connection in a class attribute (see module docstring).
                api_class = type("OvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
                self._api = api_class(conn)
            except Exception as exc:
                code = errno.ECONNREFUSED if path is not None else None
                raise HostError(op, self.remote, code, hint=_CONNECT_HINT, detail=str(exc)) from exc
            logger.debug("connected to OVSDB at %s", self.remote)
            return self._api

    def close(self) -> None:
        """Stop the connection thread; the next call connects again."""
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.ovsdb_connection.stop(timeout=self.timeout)

    def __enter__(self) -> OvsdbOvs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, op: str, target: str, action: Callable[[Any], T]) -> T:
        api = self._connect()
        try:
            return action(api)
        except Exception as exc:
            raise _host_error(exc, op, target) from exc

    @contextmanager
    def _rows(self, api: Any) -> Iterator[Mapping[str, Any]]:
        """The IDL's tables, read under the connection lock (the connection thread updates them)."""
        with api.ovsdb_connection.lock:
            yield api.tables

    def _commit(self, api: Any, *commands: Any, wait: bool = True) -> None:
        """One transaction; with `wait`, returns once ovs-vswitchd applied it (`ovs-vsctl`), else once committed
        (`--no-wait`)."""
        txn = (api.create_transaction(check_error=True, log_errors=False) if wait else
               ovs_transaction.Transaction(api, api.ovsdb_connection, check_error=True, log_errors=False))
        with txn:
            for command in commands:
                txn.add(command)

    # --- Open_vSwitch.other_config -----------------------------------------------------------------------------

    def other_config(self) -> Mapping[str, str]:
        return self._root_map("other_config")

    def external_ids(self) -> Mapping[str, str]:
        return self._root_map("external_ids")

    def _root_map(self, column: str) -> dict[str, str]:
        """A map column of the one Open_vSwitch row ({} before ovs-vswitchd made the row)."""
        def read(api: Any) -> dict[str, str]:
            with self._rows(api) as tables:
                root = next(iter(tables["Open_vSwitch"].rows.values()), None)
                return dict(getattr(root, column)) if root is not None else {}

        return self._run(f"read {column} of", "Open_vSwitch", read)

    def set_other_config(self, key: str, value: str | None) -> None:
        op = f"remove other_config:{key} from" if value is None else f"set other_config:{key}={value} on"

        def write(api: Any) -> None:
            if value is None:
                self._commit(api, api.db_remove("Open_vSwitch", ".", "other_config", key, if_exists=True))
            else:
                self._commit(api, api.db_set("Open_vSwitch", ".", ("other_config", {key: value})))

        self._run(op, "Open_vSwitch", write)
        logger.info("OVS other_config:%s = %s", key, "(removed)" if value is None else value)

    # --- bridges -----------------------------------------------------------------------------------------------

    def bridges(self) -> Sequence[str]:
        return self._run("list bridges of", "Open_vSwitch", self._bridge_names)

    def _bridge_names(self, api: Any) -> list[str]:
        with self._rows(api) as tables:
            return sorted(str(row.name) for row in tables["Bridge"].rows.values())

    def add_bridge(self, name: str, *, datapath_type: str = "", may_exist: bool = True) -> None:
        op, target = "add OVS bridge", name

        def write(api: Any) -> None:
            if not may_exist and name in self._bridge_names(api):
                raise AlreadyExists(op, target, errno.EEXIST, detail="a bridge of that name exists")
            self._commit(api, api.add_br(name, may_exist=True, datapath_type=datapath_type or None))

        self._run(op, target, write)
        logger.info("OVS bridge %s added (datapath_type %s)", name, datapath_type or "system")

    def delete_bridge(self, name: str, *, missing_ok: bool = True) -> None:
        self._delete("bridge", name, missing_ok, lambda api: name in self._bridge_names(api),
                     lambda api: api.del_br(name, if_exists=True))

    def _delete(self, kind: str, name: str, missing_ok: bool, exists: Callable[[Any], bool],
                command: Callable[[Any], Any], *, wait: bool = True) -> None:
        """Delete OVS `kind` `name` with `command`; absent: nothing when `missing_ok`, else DeviceNotFound."""
        op = f"delete OVS {kind}"

        def write(api: Any) -> None:
            if not exists(api):
                if missing_ok:
                    return
                raise DeviceNotFound(op, name, errno.ENOENT, detail=f"no {kind} of that name")
            self._commit(api, command(api), wait=wait)
            logger.info("OVS %s %s deleted", kind, name)

        self._run(op, name, write)

    # --- ports -------------------------------------------------------------------------------------------------

    def ports(self, bridge: str | None = None) -> Sequence[OvsPort]:
        """Ports with their other_config and the external_ids and mtu_request of their Interface (the one named
        like the port, else the first); a bridge's own internal port is left out, as `ovs-vsctl list-ports`
        does."""
        op, target = "list ports of", f"OVS bridge {bridge}" if bridge else "all OVS bridges"

        def read(api: Any) -> list[OvsPort]:
            result: list[OvsPort] = []
            with self._rows(api) as tables:
                bridges = [row for row in tables["Bridge"].rows.values() if bridge is None or row.name == bridge]
                if bridge is not None and not bridges:
                    raise DeviceNotFound(op, target, errno.ENOENT, detail="no bridge of that name")
                for br in bridges:
                    for port in br.ports:
                        if port.name == br.name:
                            continue
                        ifaces = sorted(port.interfaces, key=lambda iface: iface.name != port.name)
                        result.append(OvsPort(
                            name=str(port.name), bridge=str(br.name),
                            external_ids=dict(ifaces[0].external_ids) if ifaces else {},
                            other_config=dict(port.other_config),
                            mtu_request=_optional_int(ifaces[0].mtu_request) if ifaces else None,
                        ))
            return sorted(result, key=lambda p: (p.bridge, p.name))

        return self._run(op, target, read)

    def _port_bridge(self, api: Any, name: str) -> str | None:
        with self._rows(api) as tables:
            for br in tables["Bridge"].rows.values():
                if any(port.name == name for port in br.ports):
                    return str(br.name)
        return None

    def add_port(
        self,
        bridge: str,
        name: str,
        *,
        external_ids: Mapping[str, str] | None = None,
        port_other_config: Mapping[str, str] | None = None,
        mtu_request: int | None = None,
        may_exist: bool = True,
    ) -> None:
        """Like `ovs-vsctl [--may-exist] add-port BRIDGE NAME other_config:k=v… -- set Interface NAME
        external_ids:k=v… mtu_request=N`, one transaction: an existing port on the same bridge keeps its other
        keys and gets these set (ovs-vsctl would skip the Port's columns there; a CNI re-ADD needs them)."""
        op, target = f"add port {name} to", f"OVS bridge {bridge}"
        ids, port_config = dict(external_ids or {}), dict(port_other_config or {})
        iface_columns: list[tuple[str, Any]] = [("external_ids", ids)] if ids else []
        if mtu_request is not None:
            iface_columns.append(("mtu_request", mtu_request))
        port_columns: list[tuple[str, Any]] = [("other_config", port_config)] if port_config else []

        def write(api: Any) -> None:
            current = self._port_bridge(api, name)
            commands = [api.db_set("Port", name, *port_columns)] if port_columns else []
            if current is not None:
                if not may_exist or current != bridge:
                    raise AlreadyExists(op, target, errno.EEXIST, detail=f"port {name} exists on bridge {current}")
                if iface_columns:
                    commands.append(api.db_set("Interface", name, *iface_columns))
                if commands:
                    self._commit(api, *commands)
                return
            if bridge not in self._bridge_names(api):
                raise DeviceNotFound(op, target, errno.ENOENT, detail="no bridge of that name")
            # add_port inserts the Port row; db_set then finds it by name (the IDL indexes rows as they are written)
            self._commit(api, api.add_port(bridge, name, may_exist=False, **dict(iface_columns)), *commands)
            logger.info("OVS port %s added to %s", name, bridge)
            self._warn_interface_error(api, name)

        self._run(op, target, write)

    def interface_external_ids(self, name: str) -> Mapping[str, str] | None:
        def read(api: Any) -> dict[str, str] | None:
            with self._rows(api) as tables:
                for iface in tables["Interface"].rows.values():
                    if iface.name == name:
                        return dict(iface.external_ids)
            return None

        return self._run("read external_ids of", f"OVS interface {name}", read)

    def _warn_interface_error(self, api: Any, name: str) -> None:
        with self._rows(api) as tables:
            for iface in tables["Interface"].rows.values():
                if iface.name == name and iface.error:
                    logger.warning("OVS cannot open interface %s yet: %s", name, iface.error[0])

    def delete_port(self, name: str, *, missing_ok: bool = True) -> None:
        self._delete("port", name, missing_ok, lambda api: self._port_bridge(api, name) is not None,
                     lambda api: api.del_port(name, if_exists=True), wait=False)
