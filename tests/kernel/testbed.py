"""The QEMU kernel test bed: build it once (cached), then run commands as root in a guest.

Why a guest: the Linux host adapter must be proven against a real kernel's netdevsim (SR-IOV, switchdev),
vdpa_sim_net and the OVS kernel datapath, none of which this machine's kernel has. The guest boots Debian's
stock 6.1 kernel plus seven modules built out of tree (testbed/setup.sh), with the host's root file system
shared read-only over virtio-9p under a tmpfs overlay. So the guest runs this very checkout with this very
virtualenv, and only one writable host directory (the run's out dir) carries results back.

Measured recipe and its gotchas: /work/shared/research/kernel-testbed.md.

Command line, for working on the bed by hand:
    python tests/kernel/testbed.py build
    python tests/kernel/testbed.py run [--timeout S] [--keep] -- COMMAND [ARG...]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "testbed"
REPO = HERE.parents[1]
STAGE2 = SCRIPTS / "stage2.sh"
BUILD_INPUTS = ("setup.sh", "build-initramfs.sh", "init", "extract_vmlinux.py")
"""Files whose content is baked into the cached bed; changing any of them rebuilds it. stage2.sh is not
among them: the guest reads it from the checkout at every boot."""

STAMP = "stamp.json"
EXIT_UNAVAILABLE = 3
"""setup.sh's exit status when the kernel packages cannot be downloaded."""

TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "gcc-12": "gcc-12",
    "make": "make",
    "cpio": "cpio",
    "depmod": "kmod",
    "bc": "bc",
    "readelf": "binutils",
    "xz": "xz-utils",
}
"""Host commands the build and the runner need → the Debian package that provides each."""


class TestbedUnavailable(Exception):
    """This machine cannot host the bed (not root, not x86_64, a tool missing, packages not downloadable)."""

    __test__ = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TestbedBuildError(RuntimeError):
    """The build ran on a capable machine and failed: a broken recipe, not a missing prerequisite."""

    __test__ = False


class GuestError(RuntimeError):
    """The guest did not finish its job (no rc file): boot failure, kernel panic, QEMU error or timeout."""


class GuestTimeout(GuestError):
    pass


@dataclass(frozen=True)
class BedPaths:
    """A built bed in the cache."""

    root: Path
    kv: str
    build_seconds: float
    """How long building it took, when it was built (not how long this call took)."""
    built_now: bool
    """True when this process built it; False when it came from the cache."""

    @property
    def vmlinux(self) -> Path:
        return self.root / "vmlinux"

    @property
    def initramfs(self) -> Path:
        return self.root / "initramfs.cpio.gz"

    @property
    def modules(self) -> Path:
        """The guest's `/lib/modules`."""
        return self.root / "lib" / "modules"


@dataclass(frozen=True)
class GuestRun:
    """One finished guest job."""

    rc: int
    log_text: str
    out_dir: Path
    """Everything the job wrote back, plus job.sh, log, rc, timing and the serial console (console.log)."""
    wall_seconds: float
    """Host wall time from starting QEMU to its exit."""
    boot_seconds: float | None = None
    """Guest uptime when the job started (kernel boot + initramfs + stage2)."""
    job_seconds: float | None = None
    """Guest uptime spent in the job itself."""


# --- build ------------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vdpa-operator" / "kernel-bed"


def check_host() -> None:
    """Raise TestbedUnavailable naming the first prerequisite this machine lacks."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise TestbedUnavailable(f"needs Linux on x86_64, this is {platform.system()} {platform.machine()}")
    if os.geteuid() != 0:
        raise TestbedUnavailable("needs root (apt-get download, depmod, QEMU's 9p export of /)")
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not Path("/bin/busybox").exists():
        missing.append("busybox-static")
    if missing:
        raise TestbedUnavailable(f"missing Debian packages: {' '.join(missing)}")


@functools.cache
def inputs_digest() -> str:
    """Read once per process: every stamp check (one or two per `ensure_built`, one per cached bed) needs it."""
    h = hashlib.sha256()
    for name in BUILD_INPUTS:
        h.update(name.encode() + b"\0" + (SCRIPTS / name).read_bytes() + b"\0")
    return h.hexdigest()


def _apt_kernel_version() -> str | None:
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-"):
            return line.removeprefix("Depends: linux-image-")
    return None


APT_LISTS = Path("/var/lib/apt/lists")


def kernel_version() -> str:
    """The kernel `linux-image-amd64` currently depends on (Debian bumps the ABI with point releases).

    Asking apt-cache costs half a second, so the answer is remembered until apt's package lists change."""
    memo = cache_root() / "kv.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        saved = json.loads(memo.read_text())
        if saved["lists_mtime"] == APT_LISTS.stat().st_mtime_ns:
            return str(saved["kv"])
    kv = _resolve_kernel_version()
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"kv": kv, "lists_mtime": APT_LISTS.stat().st_mtime_ns}))
    return kv


def _resolve_kernel_version() -> str:
    kv = _apt_kernel_version()
    if kv is None:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        kv = _apt_kernel_version()
    if kv is None:
        # Offline with a bed already built: use it rather than give up.
        cached = _valid_beds()
        if cached:
            return cached[-1].kv
        raise TestbedUnavailable("apt-cache knows no linux-image-amd64 (not Debian, or no package lists)")
    return kv


def _read_stamp(root: Path) -> BedPaths | None:
    try:
        stamp = json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("digest") != inputs_digest():
        return None
    if not all(
        (root / name).is_file() for name in ("vmlinux", "initramfs.cpio.gz", f"lib/modules/{stamp['kv']}/modules.dep")
    ):
        return None  # damaged by hand: rebuild
    return BedPaths(root=root, kv=stamp["kv"], build_seconds=float(stamp["seconds"]), built_now=False)


def _valid_beds() -> list[BedPaths]:
    beds = [b for d in sorted(cache_root().glob("[0-9]*")) if (b := _read_stamp(d))]
    return sorted(beds, key=lambda b: (b.root / STAMP).stat().st_mtime)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One builder at a time per cache (parallel pytest sessions, CI retries)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def ensure_built(*, verbose: bool = False) -> BedPaths:
    """The bed for the current Debian kernel, built on first use and cached under
    `${XDG_CACHE_HOME:-~/.cache}/vdpa-operator/kernel-bed/<KV>/`; a cached bed returns at once."""
    check_host()
    kv = kernel_version()
    root = cache_root()
    bed = _read_stamp(root / kv)
    if bed:
        return bed
    with _locked(root):
        bed = _read_stamp(root / kv)  # another process may have built it while we waited
        if bed:
            return bed
        for stale in root.glob(".build-*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            bed = _build(tmp, kv, verbose=verbose)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return bed


def _build(tmp: Path, kv: str, *, verbose: bool) -> BedPaths:
    root = tmp.parent
    start = time.monotonic()
    log_path = tmp / "build.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", str(SCRIPTS / "setup.sh"), str(tmp)],
            env={**os.environ, "KV": kv, "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if verbose:
                sys.stderr.write(line)
        proc.wait()
    seconds = time.monotonic() - start
    log_text = log_path.read_text() if log_path.exists() else ""
    if proc.returncode == EXIT_UNAVAILABLE:
        raise TestbedUnavailable(f"the kernel packages cannot be downloaded with apt-get:\n{_tail(log_text, 10)}")
    if proc.returncode != 0:
        raise TestbedBuildError(f"testbed/setup.sh failed (rc {proc.returncode}):\n{_tail(log_text)}")
    built_kv = (tmp / "KV").read_text().strip()
    stamp = {"kv": built_kv, "digest": inputs_digest(), "seconds": round(seconds, 2), "built": time.time()}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    final = root / built_kv
    if final.exists():  # stale (other inputs): move aside, then replace
        old = Path(tempfile.mkdtemp(prefix=".build-old-", dir=root))
        final.rename(old / "bed")
    tmp.chmod(0o755)
    tmp.rename(final)
    for other in root.glob("[0-9]*"):  # beds for kernels Debian has since replaced
        if other != final:
            shutil.rmtree(other, ignore_errors=True)
    for stale in root.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return BedPaths(root=final, kv=built_kv, build_seconds=seconds, built_now=True)


# --- run --------------------------------------------------------------------------------------------------------


def _job_script(argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> str:
    lines = ["# written by tests/kernel/testbed.py; run by stage2.sh as root in the guest"]
    lines.append(f"cd {shlex.quote(cwd)} || exit 125")
    for key, value in env.items():
        if not key.isidentifier():
            raise ValueError(f"environment variable name {key!r} is not valid in sh")
        lines.append(f"export {key}={shlex.quote(value)}")
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines) + "\n"


def qemu_command(bed: BedPaths, out_dir: Path) -> list[str]:
    """TCG by default: this machine kind's /dev/kvm (kvm_pvm) cannot run a stock kernel. VDPA_KERNEL_ACCEL=kvm
    for hosts with real VT-x/AMD-V."""
    for path in (bed.root, out_dir, STAGE2):
        if any(c.isspace() for c in str(path)):
            raise TestbedUnavailable(f"{path} contains white space, which the kernel command line cannot carry")
    if os.environ.get("VDPA_KERNEL_ACCEL", "tcg") == "kvm":
        accel, cpu = "kvm", "host"
    else:
        accel, cpu = "tcg,thread=multi,tb-size=256", os.environ.get("VDPA_KERNEL_CPU", "max")
    append = f"console=ttyS0 panic=-1 quiet kbed.modules={bed.modules} kbed.stage2={STAGE2} kbed.out={out_dir}"
    return [
        "qemu-system-x86_64",
        "-machine", "q35",
        "-accel", accel,
        "-cpu", cpu,
        "-smp", "2",
        "-m", "2048",
        "-kernel", str(bed.vmlinux),
        "-initrd", str(bed.initramfs),
        "-append", append,
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
        "-fsdev", f"local,id=out,path={out_dir},security_model=none",
        "-device", "virtio-9p-pci,fsdev=out,mount_tag=out",
        "-chardev", f"file,id=console,path={out_dir / 'console.log'}",
        "-serial", "chardev:console",
        "-nic", "none",
        "-display", "none",
        "-nodefaults",
        "-no-reboot",
    ]  # fmt: skip


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def run_in_guest(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    out_dir: Path | None = None,
    bed: BedPaths | None = None,
) -> GuestRun:
    """Boot a guest, run `argv` as root in `cwd` and power off; one boot per call.

    `env` is added to the guest's minimal environment (PATH, HOME=/root, LANG=C.UTF-8). `out_dir` (default: a
    new temporary directory, which the caller removes) is shared read-write and mounted at the same path in
    the guest, so the command can write results there. QEMU's exit status says nothing about the job; the
    job's rc comes from the rc file stage2 writes last. GuestError (with the serial console's tail) when that
    file is missing; GuestTimeout after `timeout` seconds, QEMU killed."""
    bed = bed or ensure_built()
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="vdpa-kbed-"))
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("rc", "log", "timing", "console.log"):
        (out_dir / name).unlink(missing_ok=True)
    (out_dir / "job.sh").write_text(_job_script(argv, cwd, {"PYTHONUNBUFFERED": "1", **env}))
    command = qemu_command(bed, out_dir)
    start = time.monotonic()
    with open(out_dir / "qemu.log", "w") as qemu_log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:  # timeout, or KeyboardInterrupt in wait(): never leave a guest running
                proc.kill()
                proc.wait()
    wall = time.monotonic() - start
    timing = dict(line.split() for line in _read(out_dir / "timing").splitlines() if len(line.split()) == 2)
    rc_text = _read(out_dir / "rc").strip()
    if timed_out or not rc_text:
        what = f"timed out after {timeout:.0f} s" if timed_out else f"left no rc file (QEMU rc {proc.returncode})"
        details = [f"the guest {what}; out dir {out_dir}"]
        if qemu_text := _read(out_dir / "qemu.log").strip():
            details.append(f"QEMU said:\n{_tail(qemu_text, 10)}")
        details.append(f"serial console tail:\n{_tail(_read(out_dir / 'console.log'), 30)}")
        if log_text := _read(out_dir / "log"):
            details.append(f"job log tail:\n{_tail(log_text, 30)}")
        raise (GuestTimeout if timed_out else GuestError)("\n".join(details))
    started, ended = (float(timing[k]) if k in timing else None for k in ("start", "end"))
    return GuestRun(
        rc=int(rc_text),
        log_text=_read(out_dir / "log"),
        out_dir=out_dir,
        wall_seconds=wall,
        boot_seconds=started,
        job_seconds=ended - started if started is not None and ended is not None else None,
    )


# --- command line -----------------------------------------------------------------------------------------------


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("build", help="build the bed (or report the cached one)")
    run = sub.add_parser("run", help="boot a guest and run a command in it")
    run.add_argument("--timeout", type=float, default=300)
    run.add_argument("--cwd", default=str(REPO))
    run.add_argument("--keep", action="store_true", help="keep the out dir")
    run.add_argument("argv", nargs="+")
    opts = parser.parse_args(args)
    try:
        start = time.monotonic()
        bed = ensure_built(verbose=True)
        state = f"built in {bed.build_seconds:.1f} s" if bed.built_now else "cached"
        print(f"bed {bed.kv} at {bed.root} ({state}, {time.monotonic() - start:.2f} s)", file=sys.stderr)
    except TestbedUnavailable as exc:
        print(f"test bed unavailable: {exc.reason}", file=sys.stderr)
        return 2
    if opts.what == "build":
        return 0
    result = run_in_guest(opts.argv, cwd=opts.cwd, env={}, timeout=opts.timeout, bed=bed)
    sys.stdout.write(result.log_text)
    print(
        f"rc {result.rc}; wall {result.wall_seconds:.1f} s, guest boot {result.boot_seconds} s, "
        f"job {result.job_seconds} s; out dir {result.out_dir if opts.keep else '(removed)'}",
        file=sys.stderr,
    )
    if not opts.keep:
        shutil.rmtree(result.out_dir, ignore_errors=True)
    return result.rc


if __name__ == "__main__":
    sys.exit(main())
