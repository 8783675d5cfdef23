"""A real IPAM plugin executable for DelegatedIpam's tests: a Python script on a CNI_PATH directory that speaks
the protocol as skel does (VERSION answered from its supported versions, a config of any other version refused
with error 1) and otherwise does what its behaviour file says, logging each call (verb, stdin, environment)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCRIPT = """#!{python}
import json, os, signal, sys, time
here = os.path.dirname(os.path.abspath(__file__))
name = os.path.basename(__file__)
behaviour = json.load(open(os.path.join(here, name + ".json")))
stdin = sys.stdin.buffer.read()
command = os.environ.get("CNI_COMMAND", "")
with open(os.path.join(here, name + ".log"), "a") as log:
    log.write(json.dumps({{"command": command, "stdin": stdin.decode(), "env": dict(os.environ)}}) + "\\n")
supported = behaviour["supported"]
if command == "VERSION":
    print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": supported}}))
    sys.exit(0)
version = json.loads(stdin).get("cniVersion", "0.1.0")
if version not in supported:
    print(json.dumps({{"code": 1, "msg": "incompatible CNI versions",
                       "details": "config is %r, plugin supports %r" % (version, supported)}}))
    sys.exit(1)
answer = behaviour.get(command, {{}})
sys.stderr.write(answer.get("stderr", ""))
sys.stderr.flush()
sys.stdout.write(answer.get("stdout", ""))
sys.stdout.flush()
time.sleep(answer.get("sleep", 0))
if answer.get("signal"):
    os.kill(os.getpid(), getattr(signal, answer["signal"]))
sys.exit(answer.get("exit", 0))
"""

UP_TO_1_0_0 = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
UP_TO_1_1_0 = [*UP_TO_1_0_0, "1.1.0"]


class FakePlugin:
    def __init__(self, directory: Path, name: str = "fake-ipam", supported: list[str] = UP_TO_1_0_0) -> None:
        self.directory = directory
        self.name = name
        self.path = directory / name
        directory.mkdir(parents=True, exist_ok=True)
        self.install()
        self.supports(supported)

    def install(self) -> None:
        self.path.write_text(SCRIPT.format(python=sys.executable))
        self.path.chmod(0o755)

    def supports(self, versions: list[str]) -> None:
        self._update(supported=versions)

    def answer(self, verb: str, **how: Any) -> None:
        """What to do on `verb`: print `stdout` and `stderr`, `sleep`, die of `signal`, `exit` with a status."""
        self._update(**{verb: how})

    def _update(self, **behaviour: Any) -> None:
        behaviour_file = self.directory / f"{self.name}.json"
        current = json.loads(behaviour_file.read_text()) if behaviour_file.exists() else {}
        current.update(behaviour)
        behaviour_file.write_text(json.dumps(current))

    def calls(self) -> list[dict[str, Any]]:
        log = self.directory / f"{self.name}.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def commands(self) -> list[tuple[str, str | None]]:
        """(verb, the cniVersion it was sent) per call."""
        return [(call["command"], json.loads(call["stdin"]).get("cniVersion")) for call in self.calls()]
