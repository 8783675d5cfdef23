"""The simulated kernel's rules say where the real kernel shows them, and stay true as tests move.

Each subsystem module of `host/sim/kernel/` lists its rules, numbered across the package. Every rule carries one
mark: "proven on kernel" with the tests that assert it in the QEMU tier (tests/contract runs there on netdevsim
and vdpa_sim_net; tests/kernel/guest runs only there), "kernel cannot show" with the reason, or "sim only".
A named test must exist and must not skip itself on the kernel bed, or it proves nothing there.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import vdpa_operator.host.sim.kernel as kernel_package

TESTS = Path(__file__).resolve().parents[2]
PROOF_DIRS = (TESTS / "contract", TESTS / "kernel" / "guest")
RULE = re.compile(r"^ ?(\d{1,2})\. ", re.MULTILINE)
NAMED_TEST = re.compile(r"(?:test_contract_\w+\.py)?(?:::)?(test_\w+)")
"""`test_contract_vdpa.py::test_x`, `::test_y` (same file as before) or `test_z`."""
MARKS = ("proven on kernel", "kernel cannot show", "sim only", "not a kernel behaviour")


def rules() -> dict[int, tuple[str, str]]:
    """Rule number → (module, text), from every module docstring of the package."""
    found: dict[int, tuple[str, str]] = {}
    for info in pkgutil.iter_modules(kernel_package.__path__):
        module = importlib.import_module(f"{kernel_package.__name__}.{info.name}")
        doc = module.__doc__ or ""
        starts = list(RULE.finditer(doc))
        ends = [m.start() for m in starts[1:]] + [len(doc)]
        for here, end in zip(starts, ends[: len(starts)], strict=True):
            number = int(here.group(1))
            assert number not in found, f"rule {number} in {found[number][0]} and {info.name}"
            found[number] = (info.name, " ".join(doc[here.end():end].split()))
    return found


def kernel_tier_tests() -> dict[str, ast.FunctionDef]:
    tests: dict[str, ast.FunctionDef] = {}
    for directory in PROOF_DIRS:
        for path in directory.glob("test_*.py"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    tests[node.name] = node
    return tests


def skips_on_some_bed(test: ast.FunctionDef) -> bool:
    """`require(bed, …)` skips the test where the bed cannot show the behaviour (the kernel bed, here)."""
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "require"
               for n in ast.walk(test))


def test_every_rule_is_listed_once_with_a_mark() -> None:
    found = rules()
    assert sorted(found) == list(range(1, 32))
    unmarked = [n for n, (_, text) in found.items() if not any(mark in text.lower() for mark in MARKS)]
    assert unmarked == [], f"rules without a mark: {unmarked}"


def test_tests_named_as_proof_exist_and_run_on_the_kernel_bed() -> None:
    """A test named for a rule either proves it (runs on the kernel bed) or is said to skip there."""
    tests = kernel_tier_tests()
    texts = " ".join(text for _, text in rules().values())
    skipped = set(re.findall(r"`(test_\w+)` skips", texts))
    tokens = [quoted for quoted in texts.split("`")[1::2] if "test_" in quoted]
    unparsed = [t for t in tokens if not NAMED_TEST.fullmatch(t)]
    assert unparsed == [], f"tests named in a form this check does not read: {unparsed}"
    named = {NAMED_TEST.fullmatch(t).group(1) for t in tokens}  # type: ignore[union-attr]
    assert named - skipped, "no rule names a kernel-tier test as proof"
    missing = sorted(named - tests.keys())
    assert missing == [], f"named in a rule but not a test in {[str(d) for d in PROOF_DIRS]}: {missing}"
    wrong = sorted(name for name in named if skips_on_some_bed(tests[name]) != (name in skipped))
    assert wrong == [], f"named as proof but skipped on the kernel bed, or said to skip but not: {wrong}"
