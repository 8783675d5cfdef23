"""The bed's host-side plumbing without booting anything: job quoting, prerequisite checks, the cache stamp,
the rc-file protocol and the timeout (with a fake QEMU), JUnit read-back.

Why: these paths decide whether a broken guest is reported as broken (and never left running); the real boot
in test_guest.py only exercises the happy path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernel import testbed
from kernel.guest_results import cases_of, describe, parse_junit
from kernel.testbed import BedPaths, GuestError, GuestTimeout, TestbedUnavailable, run_in_guest


def test_job_script_survives_quoting(tmp_path: Path) -> None:
    cwd = tmp_path / "a dir"
    cwd.mkdir()
    script = testbed._job_script(
        ["sh", "-c", 'printf "%s|%s|%s" "$1" "$K" "$(pwd)"', "-", "it's $HOME"], str(cwd), {"K": "v 'q' $x"}
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == f"it's $HOME|v 'q' $x|{cwd}"


def test_job_script_rejects_an_env_name_sh_cannot_export() -> None:
    with pytest.raises(ValueError, match="not valid"):
        testbed._job_script(["true"], "/", {"A-B": "1"})


def test_not_root_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TestbedUnavailable, match="needs root"):
        testbed.check_host()


def test_missing_tool_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda t: None if t == "qemu-system-x86_64" else real_which(t))
    with pytest.raises(TestbedUnavailable, match="qemu-system-x86"):
        testbed.check_host()


def test_a_valid_stamp_is_used_and_a_stale_one_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(testbed, "check_host", lambda: None)
    monkeypatch.setattr(testbed, "kernel_version", lambda: "6.1.0-99-amd64")
    root = testbed.cache_root() / "6.1.0-99-amd64"
    (root / "lib/modules/6.1.0-99-amd64").mkdir(parents=True)
    for name in ("vmlinux", "initramfs.cpio.gz", "lib/modules/6.1.0-99-amd64/modules.dep"):
        (root / name).write_text("")
    stamp = {"kv": "6.1.0-99-amd64", "digest": testbed.inputs_digest(), "seconds": 12.5}
    (root / testbed.STAMP).write_text(json.dumps(stamp))
    bed = testbed.ensure_built()
    assert (bed.root, bed.kv, bed.build_seconds, bed.built_now) == (root, "6.1.0-99-amd64", 12.5, False)

    (root / testbed.STAMP).write_text(json.dumps({**stamp, "digest": "an older recipe"}))
    built: list[str] = []

    def fake_build(tmp: Path, kv: str, *, verbose: bool) -> BedPaths:
        built.append(kv)
        return BedPaths(root=root, kv=kv, build_seconds=1.0, built_now=True)

    monkeypatch.setattr(testbed, "_build", fake_build)
    assert testbed.ensure_built().built_now
    assert built == ["6.1.0-99-amd64"]
    assert not list(testbed.cache_root().glob(".build-*"))  # the temporary build dir is gone


FAKE_QEMU = """\
#!{python}
# Stands in for qemu-system-x86_64: finds the out dir on the kernel command line and plays a guest.
import os, pathlib, sys, time
append = sys.argv[sys.argv.index("-append") + 1]
out = pathlib.Path(next(a for a in append.split() if a.startswith("kbed.out=")).split("=", 1)[1])
(out / "pid").write_text(str(os.getpid()))
print("fake qemu: {mode}")
(out / "console.log").write_text("KBED: stage2 up at 1.0s\\nsomething went wrong in the guest\\n")
if "{mode}" == "ok":
    (out / "log").write_text("job output\\n")
    (out / "timing").write_text("stage2 1.0\\nstart 1.5\\nend 4.0\\n")
    (out / "rc").write_text("3\\n")
elif "{mode}" == "hang":
    time.sleep(60)
"""


def fake_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, timeout: float = 30) -> testbed.GuestRun:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    qemu = bin_dir / "qemu-system-x86_64"
    qemu.write_text(textwrap.dedent(FAKE_QEMU.format(python=sys.executable, mode=mode)))
    qemu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    bed = BedPaths(root=tmp_path / "bed", kv="6.1.0-99-amd64", build_seconds=0, built_now=False)
    return run_in_guest(["true"], cwd="/", env={}, timeout=timeout, out_dir=tmp_path / "out", bed=bed)


def test_rc_and_log_come_from_the_out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = fake_run(tmp_path, monkeypatch, "ok")
    assert (run.rc, run.log_text, run.boot_seconds, run.job_seconds) == (3, "job output\n", 1.5, 2.5)
    assert "exec true" in (run.out_dir / "job.sh").read_text()


def test_no_rc_file_is_a_guest_error_quoting_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GuestError, match="left no rc file") as info:
        fake_run(tmp_path, monkeypatch, "crash")
    assert "something went wrong in the guest" in str(info.value)
    assert "fake qemu: crash" in str(info.value)


def test_timeout_kills_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GuestTimeout, match="timed out after"):
        fake_run(tmp_path, monkeypatch, "hang", timeout=2)
    pid = int((tmp_path / "out" / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists()


JUNIT = """\
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.contract.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.contract.test_a.TestX" name="test_bad" time="0.1">
  <failure message="assert 1 == 2">line 1
line 2</failure></testcase>
<testcase classname="tests.contract.test_ab" name="test_skip" time="0"><skipped message="cannot show"/></testcase>
<testcase classname="" name="tests.kernel.guest.test_c" time="0">
  <error message="collection failure">E</error></testcase>
</testsuite></testsuites>
"""


def test_junit_cases_are_grouped_by_file(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(JUNIT)
    cases = parse_junit(tmp_path / "junit.xml")
    a = cases_of(cases, "tests/contract/test_a.py")
    assert [(c.name, c.outcome) for c in a] == [("test_ok", "passed"), ("test_bad", "failed")]
    assert [c.outcome for c in cases_of(cases, "tests/contract/test_ab.py")] == ["skipped"]
    assert [c.outcome for c in cases_of(cases, "tests/kernel/guest/test_c.py")] == ["error"]
    text = describe([a[1]])
    assert "FAILED tests.contract.test_a.TestX::test_bad: assert 1 == 2" in text and "line 2" in text
