"""How quickly, and in how much memory, hostile YAML and JSON are refused: a 1 KB billion-laughs document and
20,000 nested `[`, goal under 0.5 s and under 100 MB each (before the limits: 15-20 s and ~1.8 GB, then a
MemoryError; a RecursionError traceback). Each parse runs in a fresh process, so the peak RSS printed is that
process's own (the interpreter and the loader's imports included). Also: the embedded API server answering a
billion-laughs server-side apply, goal 400 BadRequest under 0.5 s (before: 500 after 17-35 s, the server
stalled).

    .venv/bin/python bench/hostile_input.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx2 as httpx
from common import verdict

from vdpa_operator.sim.apiserver import serve_in_thread

GOAL_SECONDS = 0.5
GOAL_MB = 100
DEPTH = 20_000


def billion_laughs() -> str:
    lines = ['lol0: &lol0 "lol"'] + [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


CASES = [
    # (what, loader call in the child, text)
    ("YAML billion laughs", "yamlio.parse_documents(text, 'bomb.yaml')", billion_laughs()),
    (f"YAML {DEPTH:,} nested [", "yamlio.parse_documents(text, 'deep.yaml')", "[" * DEPTH + "]" * DEPTH),
    (f"JSON {DEPTH:,} nested [", "bounded.loads_json(text, 'deep.json')", "[" * DEPTH + "]" * DEPTH),
]

CHILD = """
import json, resource, sys, time
from vdpa_operator import bounded, yamlio
text = sys.stdin.read()
start = time.perf_counter()
try:
    {call}
    error = None
except bounded.ParseError as err:
    error = str(err)
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "error": error}}))
"""


def refuse(call: str, text: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", CHILD.format(call=call)], input=text, capture_output=True,
                          text=True, timeout=120, check=False)
    if proc.returncode != 0:
        sys.exit(f"the parse failed outright:\n{proc.stderr[-2000:]}")
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def apply_bomb() -> tuple[float, int, str]:
    """Seconds, status code and reason of the server's answer to a billion-laughs server-side apply."""
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\nbinaryData:\n" + "".join(
        f"  {line}\n" for line in billion_laughs().splitlines())
    with serve_in_thread() as api, \
            httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=120) as client:
        start = time.perf_counter()
        answer = client.patch("/api/v1/namespaces/default/configmaps/bomb", content=body,
                              params={"fieldManager": "bench"},
                              headers={"Content-Type": "application/apply-patch+yaml"})
        return time.perf_counter() - start, answer.status_code, answer.json().get("reason", "")


def main() -> None:
    for what, call, text in CASES:
        result = refuse(call, text)
        seconds, peak_mb = float(str(result["seconds"])), int(str(result["peak_kb"])) / 1024
        refused = result["error"] is not None
        print(f"{what} ({len(text):,} bytes): refused in {seconds * 1000:.1f} ms "
              f"(goal < {GOAL_SECONDS:g} s: {verdict(refused and seconds < GOAL_SECONDS)}), "
              f"peak RSS {peak_mb:.0f} MB (goal < {GOAL_MB} MB: {verdict(refused and peak_mb < GOAL_MB)}); "
              f"{result['error'] or 'NOT refused'}")
    seconds, status, reason = apply_bomb()
    refused = status == 400 and reason == "BadRequest"
    print(f"API server, billion-laughs server-side apply: {status} {reason} in {seconds * 1000:.1f} ms "
          f"(goal 400 BadRequest < {GOAL_SECONDS:g} s: {verdict(refused and seconds < GOAL_SECONDS)})")


if __name__ == "__main__":
    main()
