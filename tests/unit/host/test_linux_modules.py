"""KernelModules reads module presence from /proc/modules, /sys/module and modules.builtin, and maps
modprobe's failures to KernelModuleMissing (no such module) or HostError with modprobe's message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vdpa_operator.host.errors import HostError, KernelModuleMissing
from vdpa_operator.host.linux.modules import KernelModules
from vdpa_operator.host.linux.sysfs import Sysfs

PROC_MODULES = """\
vhost_vdpa 32768 0 - Live 0x0000000000000000
vhost 65536 1 vhost_vdpa, Live 0x0000000000000000
mlx5_vdpa 57344 0 - Loading 0x0000000000000000
"""


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    proc, sys, lib = tmp_path / "proc", tmp_path / "sys", tmp_path / "lib"
    proc.mkdir()
    (proc / "modules").write_text(PROC_MODULES)
    for name, initstate in (("vhost_vdpa", "live"), ("vhost", "live"), ("mlx5_vdpa", "coming"),
                            ("virtio_vdpa", "going"), ("bridge", None)):
        (sys / "module" / name).mkdir(parents=True)
        if initstate:
            (sys / "module" / name / "initstate").write_text(initstate + "\n")
    lib.mkdir()
    (lib / "modules.builtin").write_text("kernel/drivers/net/veth.ko\nkernel/drivers/net/macvlan.ko\n")
    return proc, sys, lib


def modules(roots: tuple[Path, Path, Path], modprobe: tuple[str, ...] = ("false",)) -> KernelModules:
    proc, sys, lib = roots
    return KernelModules(proc, Sysfs(sys), modules_dir=lib, modprobe=modprobe)


@pytest.mark.parametrize(
    ("name", "loaded"),
    [
        ("vhost_vdpa", True),  # /proc/modules, Live
        ("vhost-vdpa", True),  # dashes are underscores to the kernel
        ("mlx5_vdpa", False),  # still Loading
        ("virtio_vdpa", False),  # not in /proc/modules; sysfs says it is going away
        ("bridge", True),  # built in with parameters: /sys/module without initstate
        ("veth", True),  # built in without parameters: only modules.builtin knows
        ("vfio_pci", False),
    ],
)
def test_is_loaded(roots: tuple[Path, Path, Path], name: str, loaded: bool) -> None:
    assert modules(roots).is_loaded(name) is loaded


def test_is_loaded_without_proc_modules(roots: tuple[Path, Path, Path]) -> None:
    """Kernels built without module support have no /proc/modules; sysfs and modules.builtin still answer."""
    (roots[0] / "modules").unlink()
    assert modules(roots).is_loaded("bridge") is True
    assert modules(roots).is_loaded("vhost_vdpa") is True
    assert modules(roots).is_loaded("vfio_pci") is False


def fake_modprobe(tmp_path: Path, rc: int, stderr: str) -> tuple[str, ...]:
    script = tmp_path / "modprobe"
    script.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\necho "{stderr}" >&2\nexit {rc}\n')
    script.chmod(0o755)
    return (str(script),)


def test_load_runs_modprobe_with_the_kernel_spelling(roots: tuple[Path, Path, Path], tmp_path: Path) -> None:
    modules(roots, fake_modprobe(tmp_path, 0, "")).load("vfio-pci")
    assert (tmp_path / "args").read_text().strip() == "vfio_pci"


def test_load_of_a_loaded_module_does_not_run_modprobe(roots: tuple[Path, Path, Path], tmp_path: Path) -> None:
    modules(roots, fake_modprobe(tmp_path, 1, "should not run")).load("vhost_vdpa")
    assert not (tmp_path / "args").exists()


def test_load_of_an_unknown_module(roots: tuple[Path, Path, Path], tmp_path: Path) -> None:
    modprobe = fake_modprobe(tmp_path, 1, "modprobe: FATAL: Module nope not found in directory /lib/modules/6.1.0")
    with pytest.raises(KernelModuleMissing) as info:
        modules(roots, modprobe).load("nope")
    assert info.value.target == "nope"
    assert "FATAL: Module nope not found" in str(info.value)


def test_load_failure_carries_modprobe_stderr(roots: tuple[Path, Path, Path], tmp_path: Path) -> None:
    modprobe = fake_modprobe(tmp_path, 1, "modprobe: ERROR: could not insert 'mlx5_vdpa': Operation not permitted")
    with pytest.raises(HostError, match="could not insert 'mlx5_vdpa'") as info:
        modules(roots, modprobe).load("mlx5_vdpa")
    assert not isinstance(info.value, KernelModuleMissing)


def test_load_without_modprobe(roots: tuple[Path, Path, Path], tmp_path: Path) -> None:
    with pytest.raises(HostError, match="cannot run"):
        modules(roots, (str(tmp_path / "no-modprobe"),)).load("vfio_pci")


@pytest.mark.skipif(shutil.which("modprobe") is None, reason="modprobe is not installed")
def test_real_modprobe_of_a_module_that_does_not_exist(roots: tuple[Path, Path, Path]) -> None:
    """The real modprobe's wording is what the mapping relies on."""
    with pytest.raises(KernelModuleMissing):
        modules(roots, ("modprobe",)).load("vdpa_operator_no_such_module")
