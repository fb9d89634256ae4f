#!/usr/bin/env python3
"""The batch recipes of README.md ("## Batch mode"), run exactly as
written: every fenced block after a `<!-- recipe: NAME -->` line is given
to bash unchanged, in a folder holding photo.jpg and photos/, under
`timeout`.  `gimp-console-3` recipes run without a display; `gimp -i`
ones, which need one, under xvfb-run, as from a desktop.  Their output
(a line, or results.csv) must agree with `catdog classify`; the one that
keeps the layers must write an XCF holding them."""
import csv
import os
import re
import shutil
import subprocess

import gimptest as gt

gt.require_gimp()
checks = gt.Checks()
profile = gt.Profile("readme")
model, trained, _ = gt.test_model(profile)
if not trained:
    # The recipes use the default model: install the stand-in as the
    # user's model in the private profile.
    profile.install_user_model(model)

with open(os.path.join(gt.SRC, "README.md")) as f:
    readme = f.read()
section = readme.split("\n## Batch mode\n", 1)[-1].split("\n## ", 1)[0]
recipes = re.findall(r"<!-- recipe: ([\w-]+) -->\n```sh\n(.*?)\n```", section, re.S)
checks.ok([name for name, _ in recipes] ==
          ["sf-file", "sf-folder", "py-file", "py-folder", "gui-sf-file", "gui-py-folder",
           "sf-layers"],
          f"README's batch recipes found ({[name for name, _ in recipes]})")

# Photos that catdog decodes at full size too: the only difference left is
# the inverse DCT (see README), bounded on the logit as in test_classify.py.
BOUND_LOGIT = 0.05
sources = {"cat.178.jpg": "photo-cat.jpg", "dog.409.jpg": "photo-dog.jpg",
           "dog.701.jpg": "photo-dog2.jpg"}
for src, name in sources.items():
    gt.crop_jpeg(os.path.join(gt.DATA, src), profile.path(name), 224, 168)
cli = gt.catdog_classify([profile.path(n) for n in sources.values()], model)
checks.ok(len(cli) == 3, "catdog classify ran on the photos")
expected = {name: cli.get(profile.path(name)) for name in sources.values()}

xvfb = shutil.which("xvfb-run")
for name, script in recipes:
    folder = profile.path(name)
    os.makedirs(os.path.join(folder, "photos"))
    shutil.copy(profile.path("photo-cat.jpg"), os.path.join(folder, "photo.jpg"))
    for photo in sources.values():
        shutil.copy(profile.path(photo), os.path.join(folder, "photos", photo))

    argv = ["bash", "-c", script]
    if script.startswith("gimp -i"):
        if not xvfb:
            checks.ok(False, f"{name}: xvfb-run is needed to give gimp -i a display")
            continue
        argv = [xvfb, "-a", "-s", "-screen 0 1280x800x24"] + argv
    proc = profile.run(argv, cwd=folder)
    if not checks.ok(proc.returncode == 0, f"{name}: exit status 0 ({proc.returncode})"):
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        continue

    if name == "sf-layers":
        path = os.path.join(folder, "photo.xcf")
        data = open(path, "rb").read() if os.path.exists(path) else b""
        # Layer names are stored as plain strings in an XCF.
        names = set(re.findall(rb"(conv\d+) #\d+\x00", data))
        per_layer = {n.decode(): len(re.findall(rb"%s #\d+\x00" % n, data)) for n in names}
        checks.ok(data.startswith(b"gimp xcf") and b"Grad-CAM (" in data,
                  f"{name}: photo.xcf written, with the heat map layer")
        checks.ok(len(per_layer) >= 2 and set(per_layer.values()) == {4},
                  f"{name}: 4 channel layers of each conv layer ({per_layer})")
    elif name.endswith("-file"):
        lines = re.findall(r"^photo\.jpg (cat|dog) ([0-9.]+)$", proc.stdout, re.M)
        want = expected["photo-cat.jpg"]
        if checks.ok(len(lines) == 1 and want, f"{name}: prints 'photo.jpg LABEL P' ({lines})"):
            checks.ok(lines[0][0] == want[0], f"{name}: label {lines[0][0]} as catdog's")
            checks.near_logit(float(lines[0][1]), want[1], BOUND_LOGIT,
                              f"{name}: probability")
    else:
        path = os.path.join(folder, "results.csv")
        rows = list(csv.reader(open(path))) if os.path.exists(path) else []
        checks.ok(rows[:1] == [["file", "label", "probability"]],
                  f"{name}: results.csv has the header file,label,probability")
        got = {os.path.basename(r[0]): r for r in rows[1:] if len(r) == 3}
        checks.ok(sorted(got) == sorted(sources.values()) and len(rows) == 4,
                  f"{name}: one row per photo ({sorted(got)})")
        for photo, row in got.items():
            want = expected.get(photo)
            if want:
                checks.ok(row[0] == f"photos/{photo}" and row[1] == want[0],
                          f"{name}: {row[0]} {row[1]} (catdog: {want[0]})")
                checks.near_logit(float(row[2]), want[1], BOUND_LOGIT,
                                  f"{name}: {photo} probability")

checks.done()
