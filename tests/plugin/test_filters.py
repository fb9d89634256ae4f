#!/usr/bin/env python3
"""plug-in-catdog-filters (what the filters look for), in headless GIMP:

- from Python: layers and channels as given open a new image of the
  pictures' size with one group per conv layer, in network order,
  "LAYER - N of C filters", holding "LAYER #K" per channel in the order
  given; its pixels are those `catdog filters` writes for the same
  arguments (the same core, seed and precision); `top` gives that many
  per layer; `size` sets the image's size;
- from Script-Fu: the same call by keyword returns the image;
- refused as calling errors, naming the problem: an unknown conv layer
  (the message lists the model's), a channel past the layer's last, a
  malformed list, a size under 16.
Few steps: the pictures' quality is the filters suite's business.
"""
import os
import re
import subprocess

from PIL import Image

import gimptest as gt

gt.require_gimp()
checks = gt.Checks()
profile = gt.Profile("filters")
model = gt.SHIPPED_MODEL
info = gt.model_info(model) or ""
convs = {}
for line in info.splitlines():
    m = re.match(r"^(\S+)\s+conv2d\s+(\d+)x(\d+)x(\d+)\s", line)
    if m:
        convs[m.group(1)] = int(m.group(4))
names = list(convs)
checks.ok(len(names) >= 2, f"the model has two conv layers or more ({names})")
A, B = (names[0], names[1]) if len(names) >= 2 else ("conv1", "conv2")

SCRIPT = r'''
def filters(**args):
    proc = PDB.lookup_procedure("plug-in-catdog-filters")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    for name, value in args.items():
        name = name.replace("_", "-")
        if name == "model":
            value = Gio.File.new_for_path(value)
        config.set_property(name, value)
    values = proc.run(config)
    status = values.index(0)
    if status != Gimp.PDBStatusType.SUCCESS:
        return {"status": status.value_nick, "error": PDB.get_last_error()}
    image = values.index(1)
    out = {"status": "success", "width": image.get_width(),
           "height": image.get_height(), "tree": layer_tree(image.get_layers())}
    return out, image

M = P["model"]
r = filters(model=M, layers=P["layers"], channels="2,0", steps=6, size=40)
if isinstance(r, tuple):
    R["pick"], image = r
    dump_pixels(find_layer(image.get_layers(), P["A"] + " #2"), P["raw"])
    image.delete()
else:
    R["pick"] = r
r = filters(model=M, layers=P["A"], top=3, steps=2, size=24)
R["top"] = r[0] if isinstance(r, tuple) else r
for key, args in P["bad"].items():
    r = filters(model=M, **dict({"steps": 2, "size": 24}, **args))
    R[key] = r[0] if isinstance(r, tuple) else r
'''

sf_out = profile.path("sf.txt")
SF = f'''
(let ((image (car (plug-in-catdog-filters #:run-mode RUN-NONINTERACTIVE
                                          #:model "{model}"
                                          #:layers "{B}"
                                          #:channels "1"
                                          #:steps 2
                                          #:size 32))))
  (display (string-append "SF " (number->string (car (gimp-image-get-width image))) " "
                          (car (gimp-item-get-name (vector-ref (car (gimp-image-get-layers image)) 0)))))
  (newline)
  (gimp-image-delete image))'''
sf = profile.run([gt.GIMP_CONSOLE, "-i", "--batch-interpreter=plug-in-script-fu-eval",
                  "-b", SF, "--quit"])
out = sf.stdout + sf.stderr
checks.ok(sf.returncode == 0 and f"SF 32 {B} - 1 of {convs.get(B, 0)} filters" in out,
          f"Script-Fu: the new image and its group ({sf.returncode}: {out.strip()[-400:]!r})")

BAD = {
    "unknown_layer": ({"layers": "nosuch"}, ["nosuch"] + names),
    "channel_range": ({"layers": A, "channels": str(convs.get(A, 1))},
                      [f"0 to {convs.get(A, 1) - 1}"]),
    "bad_list": ({"layers": A, "channels": "1,,2"}, ["1,,2", "3,7,10-15"]),
    "small": ({"layers": A, "size": 8}, ["16", "not 8"]),
}
raw = profile.path("pick.raw")
res = checks.gimp_ran(profile.run_python(SCRIPT, {
    "model": model, "layers": f"{B},{A}", "A": A, "raw": raw,
    "bad": {k: v[0] for k, v in BAD.items()},
}))

if checks.success(res, "pick"):
    p = res["pick"]
    checks.ok(p["width"] == 40 and p["height"] == 40, f"size 40: {p['width']}x{p['height']}")
    tree = p["tree"]
    groups = [t["name"] for t in tree]
    want = [f"{A} - 2 of {convs.get(A)} filters", f"{B} - 2 of {convs.get(B)} filters"]
    checks.ok(groups == want and all(t["group"] for t in tree),
              f"one group per conv layer in network order: {groups}, want {want}")
    kids = [[k["name"] for k in t.get("children", [])] for t in tree]
    checks.ok(kids == [[f"{A} #0", f"{A} #2"], [f"{B} #0", f"{B} #2"]],
              f"one layer per channel, in channel order: {kids}")
    # The same pixels as catdog filters (same core, seed, precision).
    d = profile.path("cli")
    cli = subprocess.run([gt.CATDOG, "filters", "--model", model, "--layer", A,
                          "--channels", "2", "--steps", "6", "--size", "40", "--out", d],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    png = os.path.join(d, f"{A}-2.png")
    if cli.returncode == 0 and os.path.exists(png) and os.path.exists(raw):
        with Image.open(png) as im:
            want_px = im.convert("RGB").tobytes()
        with open(raw, "rb") as f:
            got_px = f.read()
        checks.ok(got_px == want_px, f"{A} #2: the layer's pixels are catdog filters' PNG")
    else:
        checks.ok(False, f"catdog filters ran ({cli.returncode}: {cli.stderr[-300:]})")

if checks.success(res, "top"):
    kids = [len(t.get("children", [])) for t in res["top"]["tree"]]
    checks.ok(kids == [3], f"top 3 of one layer: {kids}")

for key, (args, words) in BAD.items():
    r = res.get(key, {}) if res else {}
    err = r.get("error") or ""
    checks.ok(r.get("status") == "calling-error" and all(w in err for w in words),
              f"{key}: a calling error naming {words} ({r.get('status')}: {err!r})")

checks.done()
