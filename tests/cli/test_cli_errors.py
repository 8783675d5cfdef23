"""The command line's last word on an exception: ours are one line and exit 2, anything else is a bug report."""

from __future__ import annotations

import pytest

from vdpa_operator.cli import BUG_REPORT, EXIT_BUG, run_guarded
from vdpa_operator.daemon.store import StoreError
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.host.errors import HostError


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize("exc", [
    StoreError("/etc/sriov-operator/pci/0000:65:00.0: not JSON; move it away"),
    HostError("bind", "0000:65:00.2", 16),
])
def test_our_errors_are_one_line_and_exit_2(exc: VdpaOperatorError, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_guarded(lambda: _raise(exc))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {exc}\n"
    assert "Traceback" not in err


def test_anything_else_is_a_bug_report_with_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_guarded(lambda: _raise(KeyError("evil")))
    assert exited.value.code == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'evil'" in err
    assert err.rstrip().endswith(BUG_REPORT)


def test_every_error_class_of_ours_sits_under_the_root() -> None:
    """A new error family that forgets the root would reach users as a bug report. The simulated kernel's
    errors are exempt: they are `OSError`s standing for the kernel's, which the adapters turn into `HostError`."""
    import importlib
    import pkgutil

    import vdpa_operator

    strays = []
    for info in pkgutil.walk_packages(vdpa_operator.__path__, "vdpa_operator."):
        if "_pb2" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (isinstance(value, type) and issubclass(value, Exception) and value.__module__ == info.name
                    and not name.startswith("_") and not issubclass(value, (VdpaOperatorError, OSError))):
                strays.append(f"{info.name}.{name}")
    assert strays == []
