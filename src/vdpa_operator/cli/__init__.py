"""`vdpactl`: one command group whose subcommands live in their own modules and are imported only when used, so
a long-running command (the device plugin on every node) loads none of the others' dependencies.

Exit codes, for every command: 0 done / all allowed, 1 something was rejected or failed, 2 bad input (any of our
errors, `VdpaOperatorError`, that a command does not answer itself: one line), 70 a bug (any other exception: its
traceback and where to report it).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

COMMANDS = {
    "validate": "vdpa_operator.cli.manifests:validate",
    "render": "vdpa_operator.cli.manifests:render",
    "node": "vdpa_operator.cli.node:node",
    "node-daemon": "vdpa_operator.cli.node:node_daemon",
    "device-plugin": "vdpa_operator.cli.deviceplugin:device_plugin",
    "cni-server": "vdpa_operator.cli.cni:cni_server",
    "install-cni": "vdpa_operator.cli.cni:install_cni",
    "operator": "vdpa_operator.cli.operator:operator",
    "sim": "vdpa_operator.cli.sim:sim",
    "verify": "vdpa_operator.cli.verify:verify",
}
"""Command name → `module:attribute` of its click command."""


class LazyGroup(click.Group):
    """click's documented lazy-loading group: a subcommand's module is imported when that command runs or help
    lists it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(lambda: super(LazyGroup, self).invoke(ctx))


EXIT_BUG = 70
"""sysexits' EX_SOFTWARE: an exception none of our error types stands for."""
BUG_REPORT = "vdpactl: this is a bug, not a problem with your input; please report it with the traceback above"


def run_guarded(run: Any) -> Any:
    """Run a command: our errors (`VdpaOperatorError`) become one line and exit 2, anything else a bug report
    with its traceback and exit 70. click's own exits and usage errors pass through."""
    from vdpa_operator.cli.common import fail
    from vdpa_operator.errors import VdpaOperatorError

    try:
        return run()
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit,
            KeyboardInterrupt):
        raise
    except VdpaOperatorError as err:
        fail(str(err))
    except Exception:
        traceback.print_exc()
        click.echo(BUG_REPORT, err=True)
        sys.exit(EXIT_BUG)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vdpa-operator", prog_name="vdpactl")
def main() -> None:
    """vdpactl: validate, render and run the vDPA SR-IOV operator."""
