#!/usr/bin/env python3
"""Feature maps as layers, in one headless GIMP run:

- mosaic and channels styles saved as XCF and loaded back: one group above
  the active layer, named after the verdict; inside it one layer per conv
  layer ("conv2 - 64 maps, 72x72") or one group per conv layer holding
  "conv2 #0", "conv2 #1", ...; counts, sizes and offsets as documented;
- pixels: a mosaic layer equals `catdog maps`' PNG of the same layer
  scaled to fit the canvas (nearest neighbour up, box average down), and a
  channel layer equals that map's tile of the PNG enlarged by its integer
  factor, both within rounding;
- a subset of layers; above the active layer in a stack of two;
- a flat image (through a network without padding): every map is dead
  (std = 0) and comes out black;
- the channels style under the 1 GB budget: the factor is lowered when
  that is enough, else the style is refused and the image keeps its
  layers (unless `top` keeps few enough channels); the viridis colormap
  is refused on a gray image;
- `top`: each conv layer's channels are the ones `catdog maps --top`
  lists, in its order, in both styles; the mosaic equals its PNG.
The photo is small enough that catdog and GIMP decode it at full size;
its PNG copy gives both exactly the same pixels.
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
profile = gt.Profile("maps")
model, trained, _ = gt.test_model(profile)

W, H = 224, 168
jpeg = profile.path("cat-crop.jpg")
gt.crop_jpeg(os.path.join(gt.DATA, "cat.178.jpg"), jpeg, W, H)
photo = profile.path("cat-crop.png")
with Image.open(jpeg) as im:
    im.convert("RGB").save(photo)

# Models for the budget (1 GB): 1x1 convs over a 420x420 input; the image
# is RGB at double precision (24 bytes a pixel), so 264 maps of 420x420
# need 1.12 GB at factor 1, and 64 maps fit at factor 1 (0.27 GB) but not
# at factor 2 (1.08 GB).
def wide_model(filters, path):
    spec = {"schema": 1, "name": f"wide{filters}", "input": [420, 420, 3],
            "labels": ["cat", "dog"], "layers": [
                {"type": "conv2d", "name": "wide", "filters": filters, "kernel": 1,
                 "stride": 1, "padding": "valid"},
                {"type": "relu", "name": "relu"},
                {"type": "gap", "name": "gap"},
                {"type": "dense", "name": "fc", "units": 1},
                {"type": "sigmoid", "name": "prob"}]}
    subprocess.run([gt.MAKE_MODEL, json.dumps(spec), "3", path], check=True, timeout=120)
    return path


too_wide = wide_model(264, profile.path("wide264.safetensors"))
wide = wide_model(64, profile.path("wide64.safetensors"))

SCRIPT = r'''
M = P["model"]
W, H = P["size"]
# Each style saved as XCF, then loaded back: its layers, and the pixels
# of one of them.
def through_xcf(style, xcf, layer_name, raw, **args):
    image = load(P["photo"])
    R[style] = classify(image, model=M, feature_maps=True, **args)
    save_xcf(image, xcf)
    image.delete()
    image = load(xcf)
    R[style + "_tree"] = layer_tree(image.get_layers())
    layer = find_layer(image.get_layers(), layer_name)
    if layer:
        dump_pixels(layer, raw)
    image.delete()

through_xcf("mosaic", P["xcf_mosaic"], P["mosaic_layer"], P["mosaic_raw"])
through_xcf("channels", P["xcf_channels"], P["channel_layer"], P["channel_raw"],
            maps_style="channels", colormap="viridis")

# Above the active (bottom) layer of two, only two conv layers.
image = load(P["photo"])
bottom = image.get_layers()[0]
bottom.set_name("bottom")
top = bottom.copy()
top.set_name("top")
image.insert_layer(top, None, 0)
image.set_selected_layers([bottom])
R["subset"] = classify(image, model=M, feature_maps=True, layers=P["subset"])
R["subset_tree"] = layer_tree(image.get_layers())
image.delete()

# A flat image through a network without padding: all maps are constant,
# so dead.
image = Gimp.Image.new(W, H, Gimp.ImageBaseType.RGB)
layer = Gimp.Layer.new(image, "flat", W, H, Gimp.ImageType.RGB_IMAGE, 100,
                       Gimp.LayerMode.NORMAL)
image.insert_layer(layer, None, 0)
color = Gegl.Color.new("rgb(0.5,0.4,0.3)")
Gimp.context_set_foreground(color)
layer.fill(Gimp.FillType.FOREGROUND)
R["flat"] = classify(image, model=P["flat_model"], feature_maps=True, layers="conv1")
flat = find_layer(image.get_layers(), P["flat_layer"])
if flat:
    dump_pixels(flat, P["flat_raw"])
image.delete()

# The channels budget.
def wide_image(size):
    image = Gimp.Image.new_with_precision(size, size, Gimp.ImageBaseType.RGB,
                                          Gimp.Precision.DOUBLE_LINEAR)
    layer = Gimp.Layer.new(image, "photo", size, size, Gimp.ImageType.RGB_IMAGE, 100,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.fill(Gimp.FillType.WHITE)
    return image

image = wide_image(420)
before = count_layers(image)
R["too_wide"] = classify(image, model=P["too_wide"], feature_maps=True,
                         maps_style="channels")
R["too_wide"]["layers_unchanged"] = count_layers(image) == before
image.delete()
image = wide_image(420)
R["too_wide_top"] = classify(image, model=P["too_wide"], feature_maps=True,
                             maps_style="channels", top=64)
R["too_wide_top_tree"] = layer_tree(image.get_layers())
image.delete()
image = wide_image(900)
R["wide"] = classify(image, model=P["wide"], feature_maps=True, maps_style="channels")
R["wide_tree"] = layer_tree(image.get_layers())
image.delete()

image = load(P["photo"])
image.convert_grayscale()
before = count_layers(image)
R["gray_viridis"] = classify(image, model=M, feature_maps=True, colormap="viridis")
R["gray_viridis"]["layers_unchanged"] = count_layers(image) == before
R["gray_gray"] = classify(image, model=M, feature_maps=True, layers=P["first_layer"])
R["gray_tree"] = layer_tree(image.get_layers())
image.delete()

# Only the most active channels.
image = load(P["photo"])
R["top_channels"] = classify(image, model=M, feature_maps=True, maps_style="channels",
                             top=P["top"])
R["top_channels_tree"] = layer_tree(image.get_layers())
image.delete()
image = load(P["photo"])
R["top_mosaic"] = classify(image, model=M, feature_maps=True, top=P["top"],
                           colormap="viridis")
R["top_mosaic_tree"] = layer_tree(image.get_layers())
layer = find_layer(image.get_layers(), P["top_mosaic_layer"])
if layer:
    dump_pixels(layer, P["top_mosaic_raw"])
image.delete()
'''


def catdog_maps(colormap, top=None):
    """Runs `catdog maps` (with --top when top is given); returns {layer:
    dict(c, h, w, cols, rows, width, height, png, top)} in network order,
    top: the channels --top listed, most active first."""
    out = profile.path(f"maps-{colormap}" + (f"-top{top}" if top else ""))
    argv = [gt.CATDOG, "maps", "--model", model, "--colormap", colormap, "--out", out]
    if top:
        argv += ["--top", str(top)]
    proc = subprocess.run(argv + [jpeg], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr)
    listed = {}
    for line in proc.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) > 1 and all(re.match(r"^\d+:", f) for f in fields[1:]):
            listed[fields[0]] = [int(f.split(":")[0]) for f in fields[1:]]
    layers = {}
    pattern = (r"^(.*)\t(\d+) maps of (\d+)x(\d+) in a (\d+)x(\d+) grid, "
               r"(\d+)x(\d+) pixels$")
    for line in proc.stdout.splitlines():
        m = re.match(pattern, line)
        if m:
            png = m.group(1)
            c, h, w, cols, rows, width, height = map(int, m.groups()[1:])
            name = os.path.basename(png)[:-4]
            layers[name] = dict(c=c, h=h, w=w, cols=cols, rows=rows,
                                width=width, height=height, png=png,
                                top=listed.get(name))
    return layers


def fit(w, h, max_w, max_h):
    """Scaled to fit max_w x max_h, aspect kept, rounded to nearest."""
    if max_w * h <= max_h * w:
        return max_w, max(1, min(max_h, (2 * h * max_w + w) // (2 * w)))
    return max(1, min(max_w, (2 * w * max_h + h) // (2 * h))), max_h


def ranges(src_n, dst_n):
    d = np.arange(dst_n)
    if dst_n >= src_n:       # nearest neighbour: destination centres
        first = ((2 * d + 1) * src_n) // (2 * dst_n)
        return first, first + 1
    return d * src_n // dst_n, (d + 1) * src_n // dst_n   # box


def resample(img, dst_w, dst_h):
    """The documented resampling, recomputed with an integral image."""
    img = img.astype(np.int64)
    if img.ndim == 2:
        img = img[:, :, None]
    sh, sw, ch = img.shape
    integral = np.zeros((sh + 1, sw + 1, ch), np.int64)
    integral[1:, 1:] = img.cumsum(0).cumsum(1)
    y0, y1 = ranges(sh, dst_h)
    x0, x1 = ranges(sw, dst_w)
    Y0, X0 = np.meshgrid(y0, x0, indexing="ij")
    Y1, X1 = np.meshgrid(y1, x1, indexing="ij")
    total = integral[Y1, X1] - integral[Y0, X1] - integral[Y1, X0] + integral[Y0, X0]
    n = ((Y1 - Y0) * (X1 - X0))[:, :, None]
    return (total + n // 2) // n


def raw(path, w, h):
    if not os.path.exists(path):
        return None
    data = np.frombuffer(open(path, "rb").read(), np.uint8)
    return data.reshape(h, w, 3).astype(np.int64) if data.size == w * h * 3 else None


def title(name, info):
    return f"{name} - {info['c']} maps, {info['w']}x{info['h']}"


def top_title(name, info):
    """info: of the full layer, or of its --top mosaic."""
    total = gray[name]["c"]
    return f"{name} - top {min(TOP, total)} of {total} maps, {info['w']}x{info['h']}"


# Dead maps need a network whose maps of a flat image are constant: "same"
# zero padding (the shipped model's) makes the borders differ, so an
# untrained article network ("valid" padding) stands in for that check.
flat_model = profile.path("flat-article.safetensors")
subprocess.run([gt.MAKE_MODEL, "article", "3", flat_model], check=True, timeout=120)
FLAT_CONV1 = {"c": 32, "w": 148, "h": 148}
FLAT_CONV1["width"] = FLAT_CONV1["height"] = 6 * 148 + 5  # 6 x 6 grid, 1-pixel gaps

TOP = 3
gray = catdog_maps("gray")
viridis = catdog_maps("viridis")
top_viridis = catdog_maps("viridis", TOP)
checks.ok(list(top_viridis) == list(gray) and
          all(len(v["top"] or []) == min(TOP, gray[k]["c"]) for k, v in top_viridis.items()),
          f"catdog maps --top {TOP} listed {TOP} channels of each layer "
          f"({ {k: v['top'] for k, v in top_viridis.items()} })")
checks.ok(len(gray) > 0 and list(gray) == list(viridis), f"catdog maps wrote {list(gray)}")
names = list(gray)
first = names[0] if names else "conv1"
mid = names[1] if len(names) > 1 else first
last = names[-1] if names else "conv1"
channel = min(17, gray[last]["c"] - 1) if names else 0

res = profile.run_python(SCRIPT, {
    "model": model, "photo": photo, "size": [W, H], "too_wide": too_wide, "wide": wide,
    "xcf_mosaic": profile.path("mosaic.xcf"), "xcf_channels": profile.path("channels.xcf"),
    "mosaic_layer": title(mid, gray[mid]) if names else "",
    "mosaic_raw": profile.path("mosaic.raw"),
    "channel_layer": f"{last} #{channel}", "channel_raw": profile.path("channel.raw"),
    "subset": f" {last} ,{first}", "first_layer": first,
    "flat_model": flat_model, "flat_layer": title("conv1", FLAT_CONV1),
    "flat_raw": profile.path("flat.raw"),
    "top": TOP, "top_mosaic_layer": top_title(mid, top_viridis[mid]) if names else "",
    "top_mosaic_raw": profile.path("top-mosaic.raw"),
})
res = checks.gimp_ran(res)


def outer_name(verdict):
    return f"Feature maps - {verdict['label']} {100 * verdict['probability']:.1f}%"


# --- mosaic ---------------------------------------------------------------
if checks.success(res, "mosaic") and names:
    tree = res.get("mosaic_tree", [])
    checks.ok(len(tree) == 2 and tree[0]["group"] and not tree[1]["group"],
              f"mosaic: one group above the photo ({[n['name'] for n in tree]})")
    group = tree[0] if tree else {}
    checks.ok(group.get("name") == outer_name(res["mosaic"]),
              f"mosaic: group named after the verdict ({group.get('name')!r})")
    kids = group.get("children", [])
    checks.ok([k["name"] for k in kids] == [title(n, gray[n]) for n in names],
              f"mosaic: one layer per conv layer, in order ({[k['name'] for k in kids]})")
    for kid, name in zip(kids, names):
        info = gray[name]
        w, h = fit(info["width"], info["height"], W, H)
        checks.ok((kid["width"], kid["height"], kid["x"], kid["y"]) ==
                  (w, h, (W - w) // 2, (H - h) // 2),
                  f"mosaic {name}: {info['width']}x{info['height']} fitted to {w}x{h}, "
                  f"centred ({kid['width']}x{kid['height']} at {kid['x']},{kid['y']})")
    info = gray[mid]
    w, h = fit(info["width"], info["height"], W, H)
    got = raw(profile.path("mosaic.raw"), w, h)
    with Image.open(info["png"]) as im:
        want = resample(np.asarray(im.convert("L")), w, h)
    if checks.ok(got is not None, f"mosaic {mid}: pixels read back from the XCF"):
        diff = np.abs(got - want).max()
        checks.ok(diff <= 1, f"mosaic {mid}: pixels equal catdog maps' PNG, scaled "
                  f"(max difference {diff})")
        checks.ok(got.std() > 10, f"mosaic {mid}: not a flat picture (std {got.std():.1f})")

# --- channels -------------------------------------------------------------
if checks.success(res, "channels") and names:
    checks.near(res["channels"]["dog_probability"], res.get("mosaic", {}).get(
        "dog_probability"), 1e-12, "the style does not change the verdict")
    tree = res.get("channels_tree", [])
    group = tree[0] if tree else {}
    checks.ok(group.get("group") and group.get("name") == outer_name(res["channels"]),
              f"channels: outer group named after the verdict ({group.get('name')!r})")
    subs = group.get("children", [])
    checks.ok([s["name"] for s in subs] == [title(n, gray[n]) for n in names] and
              all(s["group"] for s in subs),
              f"channels: one group per conv layer ({[s['name'] for s in subs]})")
    for sub, name in zip(subs, names):
        info = gray[name]
        f = max(1, min(W // info["w"], H // info["h"]))
        kids = sub.get("children", [])
        want_names = [f"{name} #{k}" for k in range(info["c"])]
        checks.ok([k["name"] for k in kids] == want_names,
                  f"channels {name}: {info['c']} layers {name} #0..#{info['c'] - 1}")
        sizes = {(k["width"], k["height"], k["x"], k["y"]) for k in kids}
        lw, lh = info["w"] * f, info["h"] * f
        checks.ok(sizes == {(lw, lh, (W - lw) // 2, (H - lh) // 2)},
                  f"channels {name}: {info['w']}x{info['h']} maps x{f} = {lw}x{lh}, "
                  f"centred ({sizes})")
    info = viridis[last]
    f = max(1, min(W // info["w"], H // info["h"]))
    got = raw(profile.path("channel.raw"), info["w"] * f, info["h"] * f)
    with Image.open(info["png"]) as im:
        mosaic = np.asarray(im.convert("RGB"))
    col, row = channel % info["cols"], channel // info["cols"]
    tile = mosaic[row * (info["h"] + 1):row * (info["h"] + 1) + info["h"],
                  col * (info["w"] + 1):col * (info["w"] + 1) + info["w"]]
    want = np.repeat(np.repeat(tile.astype(np.int64), f, 0), f, 1)
    if checks.ok(got is not None, f"channel {last} #{channel}: pixels read back"):
        diff = np.abs(got - want).max()
        checks.ok(diff <= 1, f"channel {last} #{channel}: equals its viridis tile of "
                  f"catdog maps' PNG, enlarged x{f} (max difference {diff})")

# --- subset, placement ----------------------------------------------------
if checks.success(res, "subset") and names:
    tree = res.get("subset_tree", [])
    checks.ok([n["name"] for n in tree] == ["top", outer_name(res["subset"]), "bottom"],
              f"maps go right above the active layer ({[n['name'] for n in tree]})")
    kids = tree[1].get("children", []) if len(tree) == 3 else []
    want = [title(n, gray[n]) for n in names if n in (first, last)]
    checks.ok([k["name"] for k in kids] == want,
              f"layers=' {last} ,{first}': those two, in network order "
              f"({[k['name'] for k in kids]})")

# --- dead maps ------------------------------------------------------------
if checks.success(res, "flat"):
    info = FLAT_CONV1
    w, h = fit(info["width"], info["height"], W, H)
    got = raw(profile.path("flat.raw"), w, h)
    checks.ok(got is not None and got.max() == 0,
              "a flat image: every map is dead and drawn black, no division by zero")

# --- top channels --------------------------------------------------------
if checks.success(res, "top_channels") and names:
    tree = res.get("top_channels_tree", [])
    subs = tree[0].get("children", []) if tree else []
    checks.ok([s["name"] for s in subs] == [top_title(n, gray[n]) for n in names],
              f"top={TOP}, channels: one group per conv layer, named 'top {TOP} of' "
              f"({[s['name'] for s in subs]})")
    for sub, name in zip(subs, names):
        want = [f"{name} #{k}" for k in top_viridis[name]["top"] or []]
        got = [k["name"] for k in sub.get("children", [])]
        checks.ok(len(got) == min(TOP, gray[name]["c"]) and got == want,
                  f"top={TOP}, channels {name}: the channels catdog maps --top lists, "
                  f"most active on top ({got} vs {want})")
if checks.success(res, "top_mosaic") and names:
    tree = res.get("top_mosaic_tree", [])
    kids = tree[0].get("children", []) if tree else []
    checks.ok([k["name"] for k in kids] == [top_title(n, top_viridis[n]) for n in names],
              f"top={TOP}, mosaic: one layer per conv layer ({[k['name'] for k in kids]})")
    info = top_viridis[mid]
    w, h = fit(info["width"], info["height"], W, H)
    got = raw(profile.path("top-mosaic.raw"), w, h)
    if checks.ok(got is not None, f"top={TOP}, mosaic {mid}: pixels read back"):
        with Image.open(info["png"]) as im:
            want = resample(np.asarray(im.convert("RGB")), w, h)
        diff = np.abs(got - want).max()
        checks.ok(diff <= 1, f"top={TOP}, mosaic {mid}: equals catdog maps --top "
                  f"{TOP}'s PNG, scaled (max difference {diff})")

# --- budget, colormap ------------------------------------------------------
checks.refused(res, "too_wide", "limit", "channels over the 1 GB budget")
if checks.success(res, "too_wide_top"):
    tree = res.get("too_wide_top_tree", [])
    kids = tree[0]["children"][0]["children"] if tree and tree[0].get("children") else []
    checks.ok(len(kids) == 64, f"channels over the budget, but top=64 fits: 64 layers "
              f"({len(kids)})")
if checks.success(res, "wide"):
    tree = res.get("wide_tree", [])
    kids = tree[0]["children"][0]["children"] if tree and tree[0].get("children") else []
    checks.ok(len(kids) == 64 and all((k["width"], k["height"]) == (420, 420) for k in kids),
              "channels: factor 2 would pass the budget, factor 1 is used instead")
checks.refused(res, "gray_viridis", "viridis", "viridis on a gray image")
if checks.success(res, "gray_gray"):
    tree = res.get("gray_tree", [])
    checks.ok(len(tree) == 2 and tree[0]["group"], "gray maps on a gray image")

checks.done()
