#!/usr/bin/env python3
"""The "channels" argument (picked channels), in batch mode:

- Python: "A:i,j;B:k" adds exactly those channel layers, in the channels
  style: one outer group named after the verdict, one group per picked
  conv layer ("conv3 - 2 of 128 maps, 37x37"), in network order, holding
  "conv3 #5", "conv3 #17" in the order given; it overrides "layers",
  "maps-style" and "top", and works with "feature-maps" off;
- Script-Fu: the same pick, saved as XCF, gives the same layers;
- bad values are calling errors that leave the image alone: malformed
  (the message names the position and token), an unknown conv layer (the
  message lists the model's conv layers), a channel out of range (the
  message gives the layer's channels);
- empty or unset: as before (no layers).
"""
import os
import re
import subprocess

import gimptest as gt

gt.require_gimp()
checks = gt.Checks()
profile = gt.Profile("channels")
model, _, _ = gt.test_model(profile)

# The model's conv layers: name -> (w, h, c), from `catdog info`.
info = gt.model_info(model) or ""
convs = {}
for line in info.splitlines():
    m = re.match(r"^(\S+)\s+conv2d\s+(\d+)x(\d+)x(\d+)\s", line)
    if m:
        convs[m.group(1)] = tuple(int(v) for v in m.groups()[1:])
names = list(convs)
checks.ok(len(names) >= 2, f"the model has two conv layers or more ({names})")
A, B = (names[-2], names[-1]) if len(names) >= 2 else ("conv1", "conv2")
CA, CB = convs.get(A, (0, 0, 1))[2], convs.get(B, (0, 0, 1))[2]
I, J, K = min(17, CA - 1), min(5, CA - 2), min(2, CB - 1)
PICK = f"{B}:{K};{A}:{I},{J}"    # layers out of network order on purpose

photo = profile.path("cat-crop.jpg")
gt.crop_jpeg(os.path.join(gt.DATA, "cat.178.jpg"), photo, 224, 168)
sf_xcf = profile.path("script-fu.xcf")

SCRIPT = r'''
M = P["model"]
def run(key, **args):
    image = load(P["photo"])
    before = count_layers(image)
    R[key] = classify(image, model=M, **args)
    R[key]["layers_unchanged"] = count_layers(image) == before
    R[key + "_tree"] = layer_tree(image.get_layers())
    image.delete()

run("pick", channels=P["pick"])
run("pick_maps", channels=P["pick"], feature_maps=True, layers=P["first"],
    maps_style="mosaic", top=3, colormap="viridis")
run("empty", channels="")
run("spaces", channels="  ")
for key, value in P["bad"].items():
    run(key, channels=value, feature_maps=True)

image = load(P["sf_xcf"])
R["script_fu_tree"] = layer_tree(image.get_layers())
image.delete()
'''

# Script-Fu first: its XCF is read back by the Python run.
SF_GOOD = f'''
(let ((image (car (gimp-file-load RUN-NONINTERACTIVE "{photo}"))))
  (plug-in-catdog-classify #:run-mode RUN-NONINTERACTIVE
                           #:image image
                           #:drawables (car (gimp-image-get-selected-layers image))
                           #:model "{model}"
                           #:channels "{PICK}")
  (gimp-file-save RUN-NONINTERACTIVE image "{sf_xcf}" -1)
  (gimp-image-delete image))'''
SF_BAD = f'''
(let ((image (car (gimp-file-load RUN-NONINTERACTIVE "{photo}"))))
  (plug-in-catdog-classify #:run-mode RUN-NONINTERACTIVE
                           #:image image
                           #:drawables (car (gimp-image-get-selected-layers image))
                           #:model "{model}"
                           #:channels "{A}:1;nosuch:2"))'''


def script_fu(code):
    return profile.run([gt.GIMP_CONSOLE, "-i",
                        "--batch-interpreter=plug-in-script-fu-eval",
                        "-b", code, "--quit"])


sf = script_fu(SF_GOOD)
checks.ok(sf.returncode == 0 and os.path.exists(sf_xcf),
          f"Script-Fu: classify with #:channels and save ({sf.returncode})"
          + ("" if sf.returncode == 0 else "\n" + sf.stdout + sf.stderr))
sf_bad = script_fu(SF_BAD)
sf_out = sf_bad.stdout + sf_bad.stderr
checks.ok("nosuch" in sf_out and "invalid input arguments" in sf_out,
          f"Script-Fu: an unknown layer is a calling error naming it "
          f"({sf_out.strip()[-400:]!r})")

BAD = {
    "no_colon": (f"{A}", "position 1", f'("{A}")'),
    "bad_number": (f"{A}:1,x", f"position {len(A) + 4}", '("x")'),
    "negative": (f"{A}:-3", f"position {len(A) + 2}", '("-3")'),
    "twice": (f"{A}:1,1", f"position {len(A) + 4}", "twice"),
    "empty_entry": (f"{A}:1;;{B}:2", f"position {len(A) + 4}", "empty"),
    "unknown": (f"{A}:1;nosuch:2", '"nosuch"', ", ".join(names)),
    "range": (f"{A}:{CA}", f"no channel {CA}", f"0 to {CA - 1}"),
}
res = checks.gimp_ran(profile.run_python(SCRIPT, {
    "model": model, "photo": photo, "pick": PICK, "first": names[0] if names else "",
    "sf_xcf": sf_xcf, "bad": {k: v[0] for k, v in BAD.items()},
}))


def title(name, n):
    w, h, c = convs[name]
    return f"{name} - {n} of {c} maps, {w}x{h}"


def check_pick(key, tree):
    outer = tree[0] if tree else {}
    subs = outer.get("children", [])
    checks.ok(len(tree) == 2 and outer.get("group") and
              outer.get("name", "").startswith("Feature maps - "),
              f"{key}: one group above the photo ({[n['name'] for n in tree]})")
    checks.ok([s["name"] for s in subs] == [title(A, 2), title(B, 1)] and
              all(s["group"] for s in subs),
              f"{key}: one group per picked conv layer, in network order "
              f"({[s['name'] for s in subs]})")
    kids = [[k["name"] for k in s.get("children", [])] for s in subs]
    checks.ok(kids == [[f"{A} #{I}", f"{A} #{J}"], [f"{B} #{K}"]],
              f"{key}: exactly the picked channels, in the order given ({kids})")


if names:
    for key in ("pick", "pick_maps"):
        if checks.success(res, key):
            check_pick(key, res.get(key + "_tree", []))
    check_pick("script-fu", res.get("script_fu_tree", []))
    for key in ("empty", "spaces"):
        if checks.success(res, key):
            checks.ok(res[key]["layers_unchanged"],
                      f"channels={key}: no layers added, as before")
    for key, (value, where, what) in BAD.items():
        r = res.get(key, {})
        err = r.get("error") or ""
        checks.ok(r.get("status") == "calling-error" and where in err and what in err,
                  f"channels={value!r}: a calling error naming {where} and {what} "
                  f"({r.get('status')}: {err})")
        checks.ok(r.get("layers_unchanged"), f"channels={value!r}: layers unchanged")

checks.done()
