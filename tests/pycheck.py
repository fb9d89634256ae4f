"""What the Python tests share: the source tree's places, their check
counters and summary line, and the skip rule (exit 77, saying what is
missing, as meson expects).

A test in a folder below tests/ puts tests/ on sys.path first.
"""
import importlib
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CONVERT = os.path.join(ROOT, "convert")
LIB = os.path.join(ROOT, "tests", "lib")
DATA = os.path.join(ROOT, "tests", "data")
SHIPPED = os.path.join(ROOT, "weights", "catdog.safetensors")

# tests/lib/catdog_torch.py and convert/catdog_convert.py (which the first
# imports) are imported by name.
sys.path[:0] = [LIB, CONVERT]

checks = 0
failures = 0


def check(ok, msg):
    """One assertion: counted, printed with its verdict; returns ok."""
    global checks, failures
    checks += 1
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        failures += 1
    return ok


def done(name):
    """Prints the summary line; the exit status for main() to return."""
    print(f"{name}: {checks} checks, {failures} failed")
    return 1 if failures else 0


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def need(*modules):
    """The named modules (e.g. "numpy", "PIL.Image", "catdog_torch"),
    imported, in order; skips the test naming the first one missing."""
    found = []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ImportError as e:
            skip(f"{name} not available ({e})")
    return found


def need_shipped():
    """The shipped model's path; skips the test when it is not there."""
    if not os.path.exists(SHIPPED):
        skip(f"no shipped model at {SHIPPED}")
    return SHIPPED
