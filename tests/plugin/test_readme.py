#!/usr/bin/env python3
"""The recipes of the manuals, run exactly as written: every fenced block
after a `<!-- recipe: NAME -->` line of docs/batch.md (batch mode) and
docs/plugin.md (installing weights) is given to bash unchanged, in a
folder holding photo.jpg, photos/ and my-model.safetensors, under
`timeout`.  `gimp-console-3` recipes run without a display; `gimp-3 -i`
ones, which need one, under xvfb-run, as from a desktop.  Their output
(a line, or results.csv) must agree with `catdog classify`; the one that
keeps the layers must write an XCF holding them; the install recipe must
put the model into the profile's models folder and print where.
(The file keeps its name from when the recipes lived in README.md.)"""
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

RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```sh\n(.*?)\n```", re.S)
PAGES = {"docs/batch.md": ["sf-file", "sf-folder", "py-file", "py-folder", "gui-sf-file",
                           "gui-py-folder", "sf-layers"],
         # Last: it makes the installed copy the default model (the same
         # weights as the one the others use).
         "docs/plugin.md": ["sf-install"]}
recipes = []
for page, want in PAGES.items():
    with open(os.path.join(gt.SRC, page)) as f:
        found = RECIPE.findall(f.read())
    checks.ok([name for name, _ in found] == want,
              f"{page}: recipes found ({[name for name, _ in found]})")
    recipes += found
# README.md shows one of them; it must be that one, byte for byte.
with open(os.path.join(gt.SRC, "README.md")) as f:
    shown = re.findall(r"<!-- recipe: sf-file[^>]*-->\n```sh\n(.*?)\n```", f.read(), re.S)
checks.ok(len(shown) == 1 and shown[0] == dict(recipes).get("sf-file"),
          "README.md's batch example is docs/batch.md's sf-file recipe")

# Photos that catdog decodes at full size too: the only difference left is
# the inverse DCT (see docs/plugin.md), bounded on the logit as in test_classify.py.
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
    shutil.copy(model, os.path.join(folder, "my-model.safetensors"))

    argv = ["bash", "-c", script]
    if script.startswith("gimp-3 -i"):
        if not xvfb:
            checks.ok(False, f"{name}: xvfb-run is needed to give gimp-3 -i a display")
            continue
        argv = [xvfb, "-a", "-s", "-screen 0 1280x800x24"] + argv
    proc = profile.run(argv, cwd=folder)
    if not checks.ok(proc.returncode == 0, f"{name}: exit status 0 ({proc.returncode})"):
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        continue

    if name == "sf-install":
        installed = os.path.join(profile.models_dir(), "my-model.safetensors")
        checks.ok(os.path.isfile(installed) and
                  open(installed, "rb").read() == open(model, "rb").read(),
                  f"{name}: the model was installed as {installed}")
        checks.ok(installed in proc.stdout.splitlines() or
                  proc.stdout.strip().endswith(installed),
                  f"{name}: prints where it installed the model ({proc.stdout.strip()[-200:]!r})")
        marker = profile.default_marker_path()
        checks.ok(os.path.exists(marker) and
                  open(marker).read().strip() == "my-model.safetensors",
                  f"{name}: make-default wrote {marker}")
    elif name == "sf-layers":
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
