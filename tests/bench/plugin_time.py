#!/usr/bin/env python3
"""plugin_time.py IMAGE RUNS - times plug-in-catdog-classify inside a
headless GIMP (tests/bench/compare runs it in the Debian 13 root).

The plug-in is installed in a private profile as the plug-in tests do it
(tests/plugin/gimptest.py; CATDOG_SOURCE_ROOT, CATDOG, CATDOG_PLUGIN and
CATDOG_PLUGIN_WORK say where things are).  GIMP loads IMAGE once, untimed;
each timed call is what a user waits for after choosing the filter: the
plug-in process starts, loads the model, reads the pixels (reduced by
GEGL), runs the network and returns.  Prints one JSON object.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin"))
import gimptest as gt  # noqa: E402

SCRIPT = r'''
import time
image = load(P["image"])
times = []
for i in range(P["runs"] + 1):
    t = time.perf_counter()
    r = classify(image)
    if r["status"] != "success":
        raise RuntimeError(r.get("error", "classification failed"))
    if i:  # the first call also starts GIMP's side of the plug-in
        times.append((time.perf_counter() - t) * 1e3)
R["times_ms"] = times
R["label"] = r["label"]
R["size"] = [image.get_width(), image.get_height()]
'''


def main():
    if len(sys.argv) != 3:
        print("usage: plugin_time.py IMAGE RUNS", file=sys.stderr)
        return 2
    gt.require_gimp()
    profile = gt.Profile("bench")
    r = profile.run_python(SCRIPT, {"image": os.path.abspath(sys.argv[1]),
                                    "runs": int(sys.argv[2])})
    if r is None:
        return 1
    t = sorted(r["times_ms"])
    mid = len(t) // 2
    median = t[mid] if len(t) % 2 else (t[mid - 1] + t[mid]) / 2
    print(json.dumps({"min_ms": t[0], "median_ms": median, "runs": len(t),
                      "size": r["size"], "label": r["label"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
