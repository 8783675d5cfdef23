"""What every `vdpactl` command shares: exit codes, error and note lines, logging, and the Host choice. Light on
purpose (click and the standard library): long-running commands such as the device plugin import only what
they use, so the process stays small."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from vdpa_operator.host.port import Host

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
SIM_ROOT_ENV = "VDPA_SIM_ROOT"


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


def default_sim_root() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.environ.get(SIM_ROOT_ENV) or os.path.join(state, "vdpa-operator", "sim-host")


def open_host(host_kind: str, sim_root: str, ovsdb: str | None) -> Host:
    """The Host of `--host linux` (this machine) or `--host sim` (the simulated host at `sim_root`, created when
    missing); with OVSDB at `ovsdb`, none when it is None."""
    if host_kind == "linux":
        from vdpa_operator.host.linux.factory import linux_host

        return linux_host(ovsdb_remote=ovsdb)
    from vdpa_operator.host.linux.ovsdb import connect_ovs
    from vdpa_operator.host.sim import SimKernel
    from vdpa_operator.host.sim.factory import sim_host

    root = Path(sim_root)
    try:
        kernel = SimKernel.open(root)
    except FileNotFoundError:
        kernel = SimKernel.create(root, real_netdevs=False)
        note(f"created a simulated host at {root}: one ConnectX-6 Dx, PFs 0000:65:00.0 (ens1f0) and "
             "0000:65:00.1 (ens1f1), legacy, no VFs (delete the directory to start over)")
    return sim_host(kernel, ovs=connect_ovs(ovsdb) if ovsdb else None)


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                           "msg": record.getMessage()})


def configure_logging() -> None:
    """JSON lines in a cluster (a pod has KUBERNETES_SERVICE_HOST), readable lines on a terminal."""
    handler = logging.StreamHandler()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        handler.setFormatter(_JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # One line per HTTP request is noise; our own modules log the state changes.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
