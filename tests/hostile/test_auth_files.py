"""Keys, tokens and kubeconfigs are 0600 from the first byte, whatever the umask.

Each case runs in a fresh interpreter under umask 0 with an audit hook (`sys.addaudithook`) that notes every file
created under the test's directory and, at the very next audited event (the `fdopen` of its descriptor, a
`chmod`, a `rename`…), the mode it has: so a file written world-readable and chmod-ed afterwards is caught in the
window between the two, which a look at the finished file never sees.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

HOOK = textwrap.dedent('''
    import atexit, json, os, sys
    os.umask(0)
    _WATCH = os.environ["WATCH"]
    _LOG = open(os.environ["AUDIT_LOG"], "w", buffering=1)
    _pending = []

    def _note(**record):
        _LOG.write(json.dumps(record) + "\\n")

    def _flush():
        for path in list(_pending):
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            _pending.remove(path)
            _note(event="born", path=path, mode=mode & 0o7777)

    def _where(target):
        if isinstance(target, int):
            try:
                return os.readlink(f"/proc/self/fd/{target}")
            except OSError:
                return ""
        if isinstance(target, (str, bytes, os.PathLike)):
            return os.path.abspath(os.fsdecode(target))
        return ""

    def _hook(event, args):
        if event == "open" and isinstance(args[0], int):
            _flush()
        elif _pending:
            _flush()
        if event == "open" and isinstance(args[2], int) and args[2] & os.O_CREAT:
            path = _where(args[0])
            if path.startswith(_WATCH) and not os.path.lexists(path):
                _pending.append(path)
        elif event == "os.chmod":
            path = _where(args[0])
            if path.startswith(_WATCH):
                _note(event="chmod", path=path, mode=args[1])

    sys.addaudithook(_hook)
    atexit.register(_flush)
''')

SECRET_NAMES = ("tls.key", "kubeconfig", "operator.kubeconfig", "admin-token", "service-account-signing.key", "ca.key")
TEMPORARY = re.compile(r"^\.(?P<name>.+?)\.(?:[0-9a-f]{16}|\d+\.\d+)\.tmp$")
"""`write_atomically`'s temporary names, today's (random) and the starting commit's (pid and thread)."""


def _final_name(path: str) -> str:
    """The name a temporary file beside its target (`.tls.key.<random>.tmp`) ends up as."""
    base = os.path.basename(path)
    match = TEMPORARY.match(base)
    return match.group("name") if match else base


def traced(tmp_path: Path, code: str, *, timeout: float = 60) -> list[dict[str, object]]:
    """Run `code` after the hook, in a new interpreter with TMPDIR inside the watched directory; its records."""
    watch = tmp_path / "watched"
    (watch / "tmp").mkdir(parents=True)
    log = tmp_path / "audit.jsonl"
    env = {**os.environ, "WATCH": str(watch), "AUDIT_LOG": str(log), "TMPDIR": str(watch / "tmp")}
    done = subprocess.run([sys.executable, "-c", HOOK + textwrap.dedent(code)], env=env, cwd=watch,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def assert_private_from_birth(records: list[dict[str, object]], *names: str) -> None:
    """Each file named (or a temporary file that became it) was 0600 when first seen and never chmod-ed."""
    for name in names:
        born = [r for r in records if r["event"] == "born" and _final_name(str(r["path"])) == name]
        assert born, f"no {name} was written: {records}"
        wider = [f"{r['path']} {oct(int(str(r['mode'])))}" for r in born if r["mode"] != 0o600]
        assert not wider, f"{name} was readable by others when created (umask 0): {wider}"
        chmods = [r for r in records if r["event"] == "chmod" and _final_name(str(r["path"])) == name]
        assert not chmods, f"{name} had its mode changed after it was created: {chmods}"


def test_the_webhook_key_is_private_from_its_first_byte(tmp_path: Path) -> None:
    records = traced(tmp_path, """
        from pathlib import Path
        from vdpa_operator.controller.certs import ensure_serving_certificate
        ensure_serving_certificate(Path("certs"), ["localhost", "127.0.0.1"])
    """)
    assert_private_from_birth(records, "tls.key")
    certs = tmp_path / "watched" / "certs"
    assert stat.S_IMODE((certs / "tls.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / "tls.crt").stat().st_mode) == 0o644, "the certificate is public: the mode asked for"


def test_the_key_a_tls_listener_loads_is_private_from_its_first_byte(tmp_path: Path) -> None:
    records = traced(tmp_path, """
        from vdpa_operator.tls import CertificateAuthority
        CertificateAuthority().issue(["localhost"]).server_context()
    """)
    assert_private_from_birth(records, "tls.key")


def test_the_webhook_key_copied_from_its_secret_is_private_from_its_first_byte(tmp_path: Path) -> None:
    """`shared_certificate` writes the files another replica stored in the Secret."""
    records = traced(tmp_path, """
        import asyncio, base64
        from pathlib import Path
        from lightkube import AsyncClient
        from lightkube.config.kubeconfig import KubeConfig
        from vdpa_operator.controller.certs import ensure_serving_certificate
        from vdpa_operator.controller.webhook import SECRET_KEYS, shared_certificate
        from vdpa_operator.kubeclient import SecretResource
        from vdpa_operator.sim.apiserver import serve_in_thread

        made = ensure_serving_certificate(Path("elsewhere"), ["localhost"])
        data = {key: base64.b64encode((made.directory / key).read_bytes()).decode() for key in SECRET_KEYS}

        async def main(api):
            client = AsyncClient(KubeConfig.from_file(api.kubeconfig_path), namespace="default")
            await client.create(SecretResource.from_dict({"apiVersion": "v1", "kind": "Secret",
                                                          "metadata": {"name": "cert"}, "data": data}))
            await shared_certificate(client, "default", "cert", Path("shared"), ["localhost"])
            await client.close()

        with serve_in_thread(Path("kubeconfig")) as api:
            asyncio.run(main(api))
    """)
    shared = [r for r in records if "/shared/" in str(r["path"])]
    assert_private_from_birth(shared, "tls.key")
    assert_private_from_birth(records, "kubeconfig")


def test_the_in_thread_servers_kubeconfigs_are_private_from_their_first_byte(tmp_path: Path) -> None:
    records = traced(tmp_path, """
        from pathlib import Path
        from vdpa_operator.sim.apiserver import serve_in_thread

        with serve_in_thread(Path("kubeconfig"), data_dir="data") as api:
            api.store.create(api.store.registry.lookup("", "v1", "serviceaccounts"), "default",
                             {"metadata": {"name": "operator"}})
            api.kubeconfig_for(Path("operator.kubeconfig"), "default", "operator")
    """)
    assert_private_from_birth(records, "kubeconfig", "operator.kubeconfig", "admin-token",
                              "service-account-signing.key", "ca.key")
    auth = tmp_path / "watched" / "data" / "auth"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o700


def test_vdpactl_sim_apiserver_writes_its_kubeconfig_and_keys_private_from_the_first_byte(tmp_path: Path) -> None:
    """The CLI in the traced interpreter, stopped by SIGTERM once its kubeconfig is there."""
    records = traced(tmp_path, """
        import os, signal, threading, time
        from pathlib import Path
        from vdpa_operator.cli.sim import sim

        def stop_when_written():
            deadline = time.monotonic() + 30
            while not Path("kubeconfig").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=stop_when_written, daemon=True).start()
        try:
            sim(["apiserver", "--port", "0", "--kubeconfig", "kubeconfig", "--data-dir", "data"],
                prog_name="vdpactl sim")
        except SystemExit as end:
            assert not end.code, end.code
    """)
    assert_private_from_birth(records, "kubeconfig", "admin-token", "service-account-signing.key", "ca.key")

