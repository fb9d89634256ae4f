#!/usr/bin/env python3
"""The Grad-CAM heat map as a layer (argument `heatmap`), in one headless
GIMP run:

- images composed of a photo on one half and plain gray on the other,
  both orders, a cat and a dog: exactly one layer is added, "Grad-CAM
  (LAST CONV)", the image's size at (0, 0), normal mode at 75% opacity,
  RGBA with the documented ramp (R = 255, G = alpha, B = 0); with a
  trained model most of its alpha (the Grad-CAM value) lies on the photo's
  half, and most of its brightest area;
- where `catdog cam` exists, the alpha channel equals its 8-bit map of the
  same pixels, also for a model that crops its input (0 outside the part
  the network sees);
- `heatmap-layer` picks another conv layer; an unknown one is an
  execution error naming the model's conv layers, and nothing is added
  (not even the feature maps asked for in the same call);
- with a selection the layer covers its bounding box; an image wider
  than 4096 pixels gets a layer of its size too;
- with feature maps: the heat map on top, the maps' group below it;
- gray image: a white layer with the same alpha ramp; indexed: refused,
  image untouched;
- `heatmap-method` occlusion and integrated-gradients: one layer named
  after the method ("Occlusion", "Integrated gradients"), its alpha equal
  to `catdog cam --method ...`'s map (integrated gradients: the plug-in
  caps the steps as needed at CATDOG_HEATMAP_IG_MAX_STEPS, `catdog cam`
  goes further, so where `catdog cam` needed more its map is compared
  with `--steps CAP`, what the core's refinement stopped at equals); from
  Script-Fu with #:heatmap-method too (calls without it get Grad-CAM, as
  above).
The composed images are JPEG files for `catdog` and PNG copies of their
decoded pixels for GIMP: both sides see the same pixels.
"""
import json
import os
import re
import subprocess

import numpy as np
from PIL import Image

import gimptest as gt

gt.require_gimp()
checks = gt.Checks()
profile = gt.Profile("heatmap")
model, trained, good = gt.test_model(profile)
info = gt.model_info(model) or ""
CONV = [f[0] for f in (line.split() for line in info.splitlines())
        if len(f) > 1 and f[1] == "conv2d"]
checks.ok(len(CONV) >= 2, f"the model's conv layers: {CONV}")
LAST = CONV[-1] if CONV else "conv3"
OTHER = CONV[-2] if len(CONV) > 1 else LAST

# Below 2 x 150 pixels high, catdog decodes the JPEG at full size, as PIL.
H = 140


def compose(src, photo_left, name):
    """A photo (scaled to H rows) beside a plain gray area of its size;
    returns the JPEG, the PNG of its decoded pixels and the photo's
    columns."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        w = round(im.width * H / im.height)
        im = im.resize((w, H), Image.LANCZOS)
    canvas = Image.new("RGB", (2 * w, H), (128, 128, 128))
    canvas.paste(im, (0 if photo_left else w, 0))
    jpeg = profile.path(name + ".jpg")
    canvas.save(jpeg, quality=95)
    png = profile.path(name + ".png")
    with Image.open(jpeg) as im:
        im.convert("RGB").save(png)
    return jpeg, png, (0, w) if photo_left else (w, 2 * w)


# An untrained network that crops its input to a centred square (150 px
# like the shipped one, so catdog decodes the composed JPEG at full size).
crop_model = profile.path("crop.safetensors")
subprocess.run([gt.MAKE_MODEL, json.dumps({
    "schema": 1, "name": "crop", "input": [150, 150, 3], "labels": ["cat", "dog"],
    "preprocess": {"resize": "crop", "scale": 1 / 255, "mean": [0, 0, 0],
                   "std": [1, 1, 1]},
    "layers": [{"type": "conv2d", "name": "c1", "filters": 8, "kernel": 3,
                "stride": 2, "padding": "same"},
               {"type": "relu", "name": "r1"},
               {"type": "conv2d", "name": "c2", "filters": 8, "kernel": 3,
                "stride": 2, "padding": "same"},
               {"type": "relu", "name": "r2"},
               {"type": "gap", "name": "gap"},
               {"type": "dense", "name": "fc", "units": 1},
               {"type": "sigmoid", "name": "prob"}]}), "3", crop_model],
               check=True, timeout=120)

composed = {}
for animal, src in (("cat", "cat.178.jpg"), ("dog", "dog.409.jpg")):
    for left in (True, False):
        key = f"{animal}-{'left' if left else 'right'}"
        composed[key] = compose(os.path.join(gt.DATA, src), left, key)

SCRIPT = r'''
M = P["model"]


def heat_run(key, png, **args):
    image = load(png)
    before = count_layers(image)
    R[key] = classify(image, model=M, **args)
    R[key]["added"] = count_layers(image) - before
    R[key]["tree"] = layer_tree(image.get_layers())
    top = image.get_layers()[0]
    R[key]["mode"] = top.get_mode().value_nick
    R[key]["opacity"] = top.get_opacity()
    R[key]["type"] = top.type().value_nick
    if R[key]["status"] == "success":
        dump_pixels(top, P["raw"][key], "R'G'B'A u8")
    return image


for key, png in P["composed"].items():
    heat_run(key, png, heatmap=True).delete()

png = P["composed"]["cat-left"]
heat_run("other_layer", png, heatmap=True, heatmap_layer=P["other"]).delete()
heat_run("occlusion", png, heatmap=True, heatmap_method="occlusion").delete()
heat_run("integrated", png, heatmap=True, heatmap_method="integrated-gradients").delete()
image = load(P["sf_xcf"])
R["script_fu_tree"] = layer_tree(image.get_layers())
image.delete()
M = P["crop_model"]
heat_run("crop", png, heatmap=True).delete()
M = P["model"]

# Wider than CATDOG_HEATMAP_MAX_SIDE: the map is enlarged to the layer.
image = load(png)
image.scale(4200, 1589)
R["big"] = classify(image, model=M, heatmap=True)
R["big"]["tree"] = layer_tree(image.get_layers())
top = image.get_layers()[0]
if R["big"]["status"] == "success":
    dump_pixels(top, P["big_raw"], "R'G'B'A u8")
image.delete()

image = load(png)
image.select_rectangle(Gimp.ChannelOps.REPLACE, 30, 20, 150, 100)
R["selection"] = classify(image, model=M, heatmap=True)
R["selection"]["tree"] = layer_tree(image.get_layers())
image.delete()

image = load(png)
before = count_layers(image)
R["unknown"] = classify(image, model=M, heatmap=True, heatmap_layer="conv99",
                        feature_maps=True)
R["unknown"]["layers_unchanged"] = count_layers(image) == before
image.delete()

image = load(png)
R["both"] = classify(image, model=M, heatmap=True, feature_maps=True)
R["both"]["tree"] = layer_tree(image.get_layers())
image.delete()

image = load(png)
image.convert_grayscale()
R["gray"] = classify(image, model=M, heatmap=True)
top = image.get_layers()[0]
R["gray"]["type"] = top.type().value_nick
R["gray"]["tree"] = layer_tree(image.get_layers())
dump_pixels(top, P["gray_raw"], "R'G'B'A u8")
image.delete()

image = load(png)
image.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE,
                      256, False, False, "")
before = count_layers(image)
R["indexed"] = classify(image, model=M, heatmap=True)
R["indexed"]["layers_unchanged"] = count_layers(image) == before
image.delete()
'''

raw = {key: profile.path(key + ".raw")
       for key in list(composed) + ["other_layer", "crop", "occlusion", "integrated"]}

# Script-Fu with the method by name: its XCF is read back by the Python run.
sf_xcf = profile.path("sf-integrated.xcf")
sf = profile.run([gt.GIMP_CONSOLE, "-i", "--batch-interpreter=plug-in-script-fu-eval", "-b", f'''
(let ((image (car (gimp-file-load RUN-NONINTERACTIVE "{composed["cat-left"][1]}"))))
  (plug-in-catdog-classify #:run-mode RUN-NONINTERACTIVE
                           #:image image
                           #:drawables (car (gimp-image-get-selected-layers image))
                           #:model "{model}"
                           #:heatmap TRUE
                           #:heatmap-method "integrated-gradients")
  (gimp-file-save RUN-NONINTERACTIVE image "{sf_xcf}" -1)
  (gimp-image-delete image))''', "--quit"])
checks.ok(sf.returncode == 0 and os.path.exists(sf_xcf),
          f"Script-Fu: classify with #:heatmap-method and save ({sf.returncode})"
          + ("" if sf.returncode == 0 else "\n" + sf.stdout + sf.stderr))

res = checks.gimp_ran(profile.run_python(SCRIPT, {
    "sf_xcf": sf_xcf,
    "model": model, "crop_model": crop_model,
    "composed": {k: v[1] for k, v in composed.items()},
    "raw": raw, "other": OTHER, "gray_raw": profile.path("gray.raw"),
    "big_raw": profile.path("big.raw")}))


def rgba(path, w, h):
    if not os.path.exists(path):
        return None
    data = np.frombuffer(open(path, "rb").read(), np.uint8)
    return data.reshape(h, w, 4) if data.size == w * h * 4 else None


def check_layer(key, name, w, h, x=0, y=0):
    """The one added layer: name, size, place, mode; returns its alpha."""
    r = res.get(key, {})
    tree = r.get("tree", [])
    checks.ok(r.get("added") == 1, f"{key}: exactly one layer added ({r.get('added')})")
    top = tree[0] if tree else {}
    checks.ok(top.get("name") == name and not top.get("group"),
              f"{key}: the top layer is {name!r} ({top.get('name')!r})")
    checks.ok((top.get("width"), top.get("height"), top.get("x"), top.get("y")) ==
              (w, h, x, y), f"{key}: {w}x{h} at {x},{y} ({top.get('width')}x"
              f"{top.get('height')} at {top.get('x')},{top.get('y')})")
    checks.ok(r.get("mode") == "normal" and r.get("opacity") == 75.0 and
              r.get("type") == "rgba-image",
              f"{key}: RGBA, normal mode, 75% opacity ({r.get('type')}, "
              f"{r.get('mode')}, {r.get('opacity')})")
    px = rgba(raw.get(key, ""), w, h)
    if not checks.ok(px is not None, f"{key}: pixels read back"):
        return None
    ramp = (px[..., 0] == 255).all() and (px[..., 2] == 0).all() and \
        (px[..., 1] == px[..., 3]).all()
    checks.ok(ramp, f"{key}: colours on the ramp R = 255, G = alpha, B = 0")
    checks.ok(px[..., 3].max() == 255, f"{key}: 255 where the network looks most "
              f"(max {px[..., 3].max()})")
    return px[..., 3].astype(np.int64)


def catdog_cam(jpeg, layer=None, with_model=None, method=None, steps=None):
    """`catdog cam`'s 8-bit map of jpeg, or None when catdog has no cam;
    what it printed in catdog_cam.stdout."""
    with_model = with_model or model
    out = jpeg + f".{layer or method or 'last'}.{os.path.basename(with_model)}.cam.png"
    argv = [gt.CATDOG, "cam", "--model", with_model, "--out", out, jpeg]
    if layer:
        argv[2:2] = ["--layer", layer]
    if method:
        argv[2:2] = ["--method", method]
    if steps:
        argv[2:2] = ["--steps", str(steps)]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=gt.CATDOG_TIMEOUT)
    catdog_cam.stdout = proc.stdout
    if proc.returncode != 0:
        print(f"     (catdog cam: {proc.stderr.strip()[:200]})")
        return None
    with Image.open(out) as im:
        return np.asarray(im.convert("L")).astype(np.int64)


def ig_max_steps():
    """The plug-in's cap on integrated gradients' steps
    (CATDOG_HEATMAP_IG_MAX_STEPS in plugin/catdog-plugin.h)."""
    with open(os.path.join(gt.SRC, "plugin", "catdog-plugin.h")) as f:
        m = re.search(r"#define CATDOG_HEATMAP_IG_MAX_STEPS (\d+)", f.read())
    checks.ok(m is not None, "plugin/catdog-plugin.h defines CATDOG_HEATMAP_IG_MAX_STEPS")
    return int(m.group(1)) if m else 0


has_cam = subprocess.run([gt.CATDOG, "help", "cam"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL).returncode == 0
if not has_cam:
    print("     (catdog has no 'cam' command yet: the heat map is not compared "
          "with it)")

for key, (jpeg, png, (x0, x1)) in composed.items():
    if not checks.success(res, key):
        continue
    with Image.open(png) as im:
        w, h = im.size
    alpha = check_layer(key, f"Grad-CAM ({LAST})", w, h)
    if alpha is None:
        continue
    mass = alpha.sum()
    on_photo = alpha[:, x0:x1].sum() / mass if mass else 0.0
    bright = alpha >= alpha.max() / 2
    bright_on_photo = bright[:, x0:x1].sum() / max(bright.sum(), 1)
    print(f"     {key}: {res[key]['label']} {res[key]['probability']:.3f}, "
          f"{100 * on_photo:.1f}% of the heat and {100 * bright_on_photo:.1f}% of "
          f"the bright area on the photo")
    # How well Grad-CAM finds the animal is the core's test (with the
    # issue's 70% of the mass); here the layer must show it, with a margin
    # for models trained later.
    if good:
        checks.ok(on_photo > 0.5, f"{key}: most of the heat on the photo "
                  f"({100 * on_photo:.1f}%)")
        checks.ok(bright_on_photo >= 2 / 3, f"{key}: the brightest area (at least "
                  f"half the peak) lies on the photo ({100 * bright_on_photo:.1f}%)")
    if has_cam:
        want = catdog_cam(jpeg)
        if checks.ok(want is not None and want.shape == alpha.shape,
                     f"{key}: catdog cam wrote a {w}x{h} map"):
            diff = np.abs(want - alpha).max()
            checks.ok(diff <= 1, f"{key}: alpha equals catdog cam's map (max "
                      f"difference {diff})")

jpeg, png, _ = composed["cat-left"]
with Image.open(png) as im:
    W, H = im.size
if checks.success(res, "other_layer"):
    alpha = check_layer("other_layer", f"Grad-CAM ({OTHER})", W, H)
    if alpha is not None and has_cam:
        want = catdog_cam(jpeg, OTHER)
        if want is not None and want.shape == alpha.shape:
            diff = np.abs(want - alpha).max()
            checks.ok(diff <= 1, f"heatmap-layer {OTHER}: equals catdog cam --layer "
                      f"{OTHER} (max difference {diff})")

for key, method, name in (("occlusion", "occlusion", "Occlusion"),
                          ("integrated", "integrated-gradients", "Integrated gradients")):
    if not checks.success(res, key):
        continue
    alpha = check_layer(key, name, W, H)
    if alpha is not None and has_cam:
        want = catdog_cam(jpeg, method=method)
        if method == "integrated-gradients":
            m = re.search(r"^completeness: \w+ baseline, (\d+) steps", catdog_cam.stdout or "",
                          re.M)
            cap = ig_max_steps()
            checks.ok(m is not None, f"catdog cam printed the steps it took "
                      f"({(catdog_cam.stdout or '').strip()[:200]})")
            if m and int(m.group(1)) > cap:
                print(f"     (catdog cam took {m.group(1)} steps, the plug-in stops at {cap}: "
                      f"compared with --steps {cap})")
                want = catdog_cam(jpeg, method=method, steps=cap)
        if checks.ok(want is not None and want.shape == alpha.shape,
                     f"{key}: catdog cam --method {method} wrote its map"):
            diff = np.abs(want - alpha).max()
            checks.ok(diff <= 1, f"heatmap-method {method}: equals catdog cam --method "
                      f"{method} (max difference {diff})")
tree = res.get("script_fu_tree", [])
checks.ok(len(tree) == 2 and tree[0].get("name") == "Integrated gradients",
          f"Script-Fu #:heatmap-method: the top layer is 'Integrated gradients' "
          f"({[n.get('name') for n in tree]})")

if checks.success(res, "crop"):
    r = res["crop"]
    tree = r.get("tree", [])
    checks.ok(r.get("added") == 1 and tree and (tree[0]["width"], tree[0]["height"]) == (W, H),
              f"crop model: one layer of the image's size ({tree[:1]})")
    alpha = rgba(raw["crop"], W, H)
    alpha = alpha[..., 3].astype(np.int64) if alpha is not None else None
    # The network sees the centred H x H square.
    x0 = (W - H + 1) // 2
    if checks.ok(alpha is not None and alpha[:, x0:x0 + H].max() == 255,
                 "crop model: the heat map lies on the part the network sees"):
        outside = np.concatenate([alpha[:, :x0], alpha[:, x0 + H:]], 1)
        checks.ok(outside.max() == 0, f"crop model: 0 outside it (max {outside.max()})")
        if has_cam:
            want = catdog_cam(jpeg, with_model=crop_model)
            if checks.ok(want is not None and want.shape == alpha.shape,
                         "crop model: catdog cam wrote its map"):
                diff = np.abs(want - alpha).max()
                checks.ok(diff <= 1, f"crop model: equals catdog cam's map (max "
                          f"difference {diff})")

if checks.success(res, "big"):
    tree = res["big"].get("tree", [])
    top = tree[0] if tree else {}
    checks.ok((top.get("width"), top.get("height")) == (4200, 1589),
              f"4200x1589 image: the heat map is its size ({top})")
    px = rgba(profile.path("big.raw"), 4200, 1589)
    if checks.ok(px is not None and px[..., 3].max() == 255,
                 "4200x1589 image: 255 where the network looks most") and good:
        alpha = px[..., 3].astype(np.int64)
        on_photo = alpha[:, :2100].sum() / max(alpha.sum(), 1)
        checks.ok(on_photo > 0.5, f"4200x1589 image: most of the heat on the photo "
                  f"({100 * on_photo:.1f}%)")

if checks.success(res, "selection"):
    tree = res["selection"].get("tree", [])
    top = tree[0] if tree else {}
    checks.ok((top.get("width"), top.get("height"), top.get("x"), top.get("y")) ==
              (150, 100, 30, 20),
              f"selection: the layer covers its bounding box, 150x100 at 30,20 ({top})")

r = res.get("unknown", {})
checks.ok(r.get("status") == "execution-error" and "conv99" in r.get("error", "") and
          all(n in r.get("error", "") for n in CONV),
          f"unknown heatmap-layer: execution error naming the conv layers ({r.get('error')})")
checks.ok(r.get("layers_unchanged"), "unknown heatmap-layer: no layer added, not even "
          "the feature maps")

if checks.success(res, "both"):
    names = [n["name"] for n in res["both"].get("tree", [])]
    checks.ok(len(names) == 3 and names[0] == f"Grad-CAM ({LAST})" and
              names[1].startswith("Feature maps - "),
              f"heat map and feature maps: the heat map on top, the maps below ({names})")

if checks.success(res, "gray"):
    checks.ok(res["gray"].get("type") == "graya-image",
              f"gray image: a gray layer with alpha ({res['gray'].get('type')})")
    px = rgba(profile.path("gray.raw"), W, H)
    # Colours of fully transparent pixels do not survive babl's conversion.
    seen = px[px[..., 3] > 0] if px is not None else None
    checks.ok(seen is not None and len(seen) > 0 and (seen[:, :3] >= 254).all() and
              seen[:, 3].max() >= 224, "gray image: white, the heat in the alpha")

r = res.get("indexed", {})
checks.ok(r.get("status") == "execution-error" and "indexed" in r.get("error", ""),
          f"indexed image: refused with a clear message ({r.get('error')})")
checks.ok(r.get("layers_unchanged"), "indexed image: layers unchanged")

checks.done()
