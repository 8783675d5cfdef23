"""What every `vdpactl` command shares: exit codes, error and note lines, logging, and the Host choice. Light on
purpose (click and the standard library): long-running commands such as the device plugin import only what
they use, so the process stays small."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from vdpa_operator.host.port import Host

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
SIM_ROOT_ENV = "VDPA_SIM_ROOT"
HOST_ENV = "VDPA_HOST"
SIM_NETNS_ENV = "VDPA_SIM_NETNS"
OVSDB_ENV = "VDPA_OVSDB"
"""The environment a simulated cluster's kubelet gives the pods it runs, so deploy/'s manifests, unchanged, work on
the node's simulated host and OVS instead of the machine's: the flags' defaults. A real cluster sets none of them."""


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


def default_sim_root() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.environ.get(SIM_ROOT_ENV) or os.path.join(state, "vdpa-operator", "sim-host")


def open_host(host_kind: str, sim_root: str, ovsdb: str | None, sim_netns: str | None = None) -> Host:
    """The Host of `--host linux` (this machine) or `--host sim` (the simulated host at `sim_root`, created when
    missing, with real links in the network namespace `sim_netns` when given); with OVSDB at `ovsdb`, none when
    it is None."""
    if host_kind == "linux":
        from vdpa_operator.host.linux.factory import linux_host

        return linux_host(ovsdb_remote=ovsdb)
    from vdpa_operator.host.linux.ovsdb import connect_ovs
    from vdpa_operator.host.sim.factory import sim_host

    return sim_host(_sim_kernel(Path(sim_root), sim_netns), ovs=connect_ovs(ovsdb) if ovsdb else None)


def _sim_kernel(root: Path, sim_netns: str | None) -> Any:
    from vdpa_operator.host.sim import SimKernel

    try:
        kernel = SimKernel.open(root)
    except FileNotFoundError:
        pass
    else:
        node = kernel.config.node_netns
        if sim_netns is not None and node != sim_netns:
            fail(f"--sim-netns {sim_netns}: the simulated host at {root} was created "
                 + (f"with its links in netns {node}" if node else "without real links")
                 + "; pass the same --sim-netns, or delete the directory to start over")
        return kernel
    if sim_netns is None:
        kernel = SimKernel.create(root, real_netdevs=False)
    else:
        if os.geteuid() != 0:
            fail("--sim-netns needs root: it creates network namespaces and veth pairs")
        from vdpa_operator.host.sim.realnet import create_netns

        if not os.path.exists(f"/var/run/netns/{sim_netns}"):
            create_netns(sim_netns)
        kernel = SimKernel.create(root, node_netns=sim_netns, real_netdevs=True)
    note(f"created a simulated host at {root}: one ConnectX-6 Dx, PFs 0000:65:00.0 (ens1f0) and "
         "0000:65:00.1 (ens1f1), legacy, no VFs"
         + (f", its virtio netdevs and representors real veth pairs in netns {sim_netns}" if sim_netns else "")
         + " (delete the directory to start over)")
    return kernel


def sim_host_options(func: Any) -> Any:
    """`--host`, `--sim-root` and `--sim-netns`: which machine a command works on (every command that takes a
    Host), as `host_kind`, `sim_root` and `sim_netns`."""
    options = [
        click.option("--host", "host_kind", type=click.Choice(["linux", "sim"]), default="linux", show_default=True,
                     envvar=HOST_ENV, help=f"This machine's kernel, or the simulated ConnectX-6 Dx host (default "
                     f"also from ${HOST_ENV})."),
        click.option("--sim-root", metavar="DIR", default=default_sim_root, show_default=f"${SIM_ROOT_ENV} or "
                     "~/.local/state/vdpa-operator/sim-host", help="The simulated host (with --host sim; created "
                     "when missing)."),
        click.option("--sim-netns", metavar="NAME", default=None, envvar=SIM_NETNS_ENV,
                     help="With --host sim, when the simulated host is created: back its virtio netdevs and "
                     "representors with real veth pairs in this network namespace (created if missing; needs "
                     f"root; default ${SIM_NETNS_ENV})."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], object]) -> None:
    """SIGTERM (a pod being stopped) and SIGINT call `stop` in the event loop."""
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
