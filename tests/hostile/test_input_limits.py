"""Hostile YAML and JSON fed to the command line, the device plugin's config and the CNI: each gets one clear
error naming the file and line and saying what to do (exit 2; the CNI's error JSON with code 6), quickly and
without a traceback, where a billion-laughs file used to take gigabytes and 20,000 `[` a RecursionError.

The commands run as processes under a 1 GiB address-space limit, so a loader that expands what it should refuse
fails here with a MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from vdpa_operator.bounded import DEFAULT_LIMITS
from vdpa_operator.cni.errors import DECODING_FAILURE, CniError
from vdpa_operator.cni.spec import parse_request

BIN = Path(sys.executable).parent
LIMITS = DEFAULT_LIMITS
ADDRESS_SPACE = 1 << 30


def billion_laughs() -> str:
    """Nine levels of nine aliases: under 1 KB of YAML for 9^9 strings."""
    lines = ['lol0: &lol0 "lol"']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def policy(extra: str) -> str:
    """A policy manifest with `extra` as the last lines of its spec (line 9 on)."""
    return ("apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodePolicy\nmetadata:\n  name: p\n"
            "  namespace: openshift-sriov-network-operator\nspec:\n  resourceName: mlxnics\n  numVfs: 2\n" + extra)


DEEP = LIMITS.max_depth * 200  # as many `[` as the 20,000
CASES = [
    # (id, file text, the error line it must print)
    ("billion-laughs", billion_laughs(),
     rf"^error: {{file}}:\d+: YAML aliases expand to more than {LIMITS.max_alias_nodes} values; write the values "
     "out or alias smaller ones$"),
    ("deep-flow-lists", "[" * DEEP + "]" * DEEP,
     rf"^error: {{file}}:1: nested more than {LIMITS.max_depth} levels deep; .*flatten the data"),
    ("deep-json-objects", '{"a": ' * DEEP + "1" + "}" * DEEP,
     rf"^error: {{file}}:1: nested more than {LIMITS.max_depth} levels deep"),
    ("deep-block-spec", policy("".join("  " * (i + 1) + f"k{i}:\n" for i in range(LIMITS.max_depth + 5))),
     rf"^error: {{file}}:{9 + LIMITS.max_depth - 1}: nested more than {LIMITS.max_depth} levels deep"),
    ("recursive-alias", "a: &a [1, *a]\n",
     r"^error: {file}:1: an alias inside the value it names \(a recursive alias\) has no JSON form; remove it$"),
    ("too-many-aliases", "a: &x 1\nb: [" + ", ".join(["*x"] * (LIMITS.max_aliases + 1)) + "]\n",
     rf"^error: {{file}}:2: more than {LIMITS.max_aliases} YAML aliases \(\*name\); write the values out instead$"),
    ("too-many-values", "[" + ",".join(["0"] * (LIMITS.max_nodes + 1)) + "]\n",
     rf"^error: {{file}}:1: more than {LIMITS.max_nodes} values; split the input into smaller documents$"),
    ("too-large", "# padding\n" * (LIMITS.max_bytes // 10 + 1),
     rf"^error: {{file}}: more than the limit of {LIMITS.max_bytes} bytes; split the input into smaller files$"),
    ("integer-of-5000-digits", policy(f"  priority: {'9' * 5000}\n"),
     r'^error: {file}:9: SriovNetworkNodePolicy "p": spec.priority: expected integer, got string'),
]


def vdpactl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run([str(BIN / "vdpactl"), *args], input=stdin, capture_output=True, text=True, timeout=60,
                          preexec_fn=limit, check=False)


def assert_refused(result: subprocess.CompletedProcess[str], pattern: str, file: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert re.match(pattern.format(file=re.escape(file)), lines[0][:400]), lines[0][:400]


@pytest.mark.parametrize(("text", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_refuses_with_file_line_and_what_to_do(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "input.yaml"
    path.write_text(text)
    assert_refused(vdpactl("validate", "-f", str(path)), pattern, str(path))


@pytest.mark.parametrize("command", [
    ["render", "-f", "{file}", "--node-states", "{examples}/node-states.yaml"],
    ["validate", "-f", "-"],
    ["node", "plan", "--host", "sim", "--sim-root", "{tmp}/sim", "-f", "{file}"],
    ["validate", "-f", "{examples}/vdpa-policy.yaml", "--node-states", "{file}"],
    ["validate", "-f", "{examples}/vdpa-policy.yaml", "--supported-nics", "{file}"],
], ids=["render", "validate-stdin", "node-plan", "node-states", "supported-nics"])
@pytest.mark.parametrize(("text", "pattern"), [c[1:] for c in CASES[:2]], ids=[c[0] for c in CASES[:2]])
def test_every_command_that_reads_yaml_keeps_the_limits(tmp_path: Path, command: list[str], text: str,
                                                        pattern: str) -> None:
    path = tmp_path / "input.yaml"
    path.write_text(text)
    examples = Path(__file__).parents[2] / "examples"
    args = [a.format(file=path, tmp=tmp_path, examples=examples) for a in command]
    shown = "<stdin>" if "-" in args else str(path)
    assert_refused(vdpactl(*args, stdin=text if "-" in args else None), pattern, shown)


JSON_CASES = [
    ("deep-lists", "[" * DEEP + "]" * DEEP, rf"{{file}}:1: nested more than {LIMITS.max_depth} levels deep"),
    ("deep-objects", '{"resourceList": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}",
     rf"{{file}}:1: nested more than {LIMITS.max_depth} levels deep"),
    ("deep-on-line-3", '{\n"resourceList":\n' + "[" * DEEP + "]" * DEEP + "}",
     rf"{{file}}:3: nested more than {LIMITS.max_depth} levels deep"),
    ("too-large", '{"resourceList": []}' + " " * LIMITS.max_bytes,
     rf"{{file}}: {LIMITS.max_bytes + 20} bytes is more than the limit of {LIMITS.max_bytes} bytes"),
]


@pytest.mark.parametrize(("text", "pattern"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_device_plugin_config_file_refused(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    result = vdpactl("device-plugin", "--node-name", "n", "--host", "sim", "--sim-root", str(tmp_path / "sim"),
                     "--config-file", str(path))
    assert_refused(result, "^error: " + pattern, str(path))


CNI_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod"}
DEEP_CONFIG = '{"cniVersion": "1.0.0", "name": "n", "type": "vdpa-cni", "ipam": ' + "[" * DEEP + "]" * DEEP + "}"


def test_cni_config_nested_too_deeply_is_a_decoding_error() -> None:
    with pytest.raises(CniError) as caught:
        parse_request(CNI_ENV, DEEP_CONFIG.encode())
    assert caught.value.code == DECODING_FAILURE
    assert caught.value.msg == (f"error unmarshall network config: stdin:1: nested more than {LIMITS.max_depth} "
                                "levels deep; Kubernetes objects nest far less: flatten the data or remove the "
                                "excess brackets")


def test_the_cni_executable_answers_a_too_deep_config_with_the_spec_error() -> None:
    """The runtime's view: `vdpa-cni` prints the spec's error JSON (code 6, in the config's version when it can
    be read, else the latest) and exits 1, served in its own process where no CNI server listens."""
    if Path("/var/run/vdpa-cni/server.sock").exists():
        pytest.skip("a CNI server listens at the default socket on this machine")
    proc = subprocess.run([str(BIN / "vdpa-cni")], input=DEEP_CONFIG.encode(), capture_output=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **CNI_ENV}, check=False)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()[-2000:]
    answer = json.loads(proc.stdout)
    assert (proc.returncode, answer["code"], answer["cniVersion"]) == (1, DECODING_FAILURE, "1.1.0")
    assert f"stdin:1: nested more than {LIMITS.max_depth} levels deep" in answer["msg"]
