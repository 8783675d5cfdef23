"""deploy/Dockerfile without building it (no container engine in CI): every file it copies exists and reaches the
build context, it installs this package, it carries the commands the code runs, and its entry point is `vdpactl`."""

from __future__ import annotations

import fnmatch
import inspect
import json
import re
import shlex
import tomllib

from deploy_support import DEPLOY, ROOT
from packaging.specifiers import SpecifierSet

from vdpa_operator.host.linux.modules import KernelModules
from vdpa_operator.host.linux.udev import UdevRuleFiles
from vdpa_operator.verify.checks import DUMP_FLOWS

DOCKERFILE = DEPLOY / "Dockerfile"
IGNORE_FILE = DEPLOY / "Dockerfile.dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERIFY_FLOWS_COMMAND = DUMP_FLOWS[0]
DEBIAN_PACKAGE_OF = {"modprobe": "kmod", "udevadm": "udev", "ovs-appctl": "openvswitch-common"}
"""Which Debian (bookworm) package installs each command the Linux host adapter runs."""


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        instruction, _, arguments = text.partition(" ")
        out.append((instruction.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def _of(name: str) -> list[str]:
    return [arguments for instruction, arguments in instructions() if instruction == name]


def sent_to_the_build(path: str) -> bool:
    """Whether `path` (relative to the context, the repository root) survives Dockerfile.dockerignore: the last
    pattern that matches the path or one of its parent directories decides, `!` re-includes."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    sent = True
    for raw in IGNORE_FILE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        include = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            sent = include
    return sent


def test_the_base_image_is_python_slim_of_a_supported_version() -> None:
    [base] = _of("FROM")
    match = re.fullmatch(r"python:(\d+\.\d+)-slim(-\w+)?", base)
    assert match, f"FROM {base}: expected python:<version>-slim[-<debian release>]"
    assert match.group(1) + ".0" in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_every_copied_file_exists_and_reaches_the_build_context() -> None:
    copies = _of("COPY") + _of("ADD")
    assert copies
    sources = [s for args in copies for s in shlex.split(args)[:-1] if not s.startswith("--")]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository root (the build context)"
        assert sent_to_the_build(source), f"COPY {source}: excluded by {IGNORE_FILE.name}"
    assert PYPROJECT["project"]["readme"] in sources, "pip install . needs the readme pyproject.toml names"
    assert {"pyproject.toml", "src/"} <= set(sources)


def test_the_context_leaves_out_what_the_image_does_not_install() -> None:
    for path in [".venv/bin/python", "tests/deploy", ".git/HEAD", "deploy/helm", "src/vdpa_operator/__pycache__"]:
        assert not sent_to_the_build(path), path
    assert sent_to_the_build("src/vdpa_operator/cli.py")


def test_the_package_is_installed_and_vdpactl_is_the_entry_point() -> None:
    assert any(re.search(r"\bpip install\b.*\s\.(\s|$)", run) for run in _of("RUN")), "no `pip install .`"
    [entrypoint] = _of("ENTRYPOINT")
    assert json.loads(entrypoint) == ["vdpactl"], "exec form, the console script alone"
    assert "vdpactl" in PYPROJECT["project"]["scripts"]
    assert not _of("CMD"), "each manifest gives its own subcommand"
    assert not _of("USER"), "the config daemon needs root; the operator's pod sets runAsUser itself"


def test_the_commands_the_host_adapter_runs_are_installed() -> None:
    """modprobe and udevadm are the only programs the Linux adapter starts; everything else is Python. Beside
    them, ovs-appctl for `vdpactl verify`'s flows check, which runs in the config-daemon pod."""
    commands = {
        inspect.signature(KernelModules).parameters["modprobe"].default[0],
        inspect.signature(UdevRuleFiles).parameters["udevadm"].default,
    }
    installs = [re.search(r"apt-get install (.*?)(&&|$)", run) for run in _of("RUN")]
    packages = {p for m in installs if m for p in m.group(1).split() if not p.startswith("-")}
    assert packages == {DEBIAN_PACKAGE_OF[c] for c in commands} | {DEBIAN_PACKAGE_OF[VERIFY_FLOWS_COMMAND]}
