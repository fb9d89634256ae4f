#!/usr/bin/env python3
"""`catdog cam` end to end: the files it writes (sizes, the overlay's blend,
the part of the photo a crop model sees), what it prints, and its errors;
`catdog maps --top` option errors.

usage: cli_cam.py        ($CATDOG: the catdog command)
Exits 77 (skip) when numpy, PIL or the shipped model are missing.
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycheck  # noqa: E402
from pycheck import DATA, SHIPPED, check  # noqa: E402

np, Image = pycheck.need("numpy", "PIL.Image")


def run(*args):
    return subprocess.run([os.environ["CATDOG"], *args], capture_output=True, text=True)


def conv_layers(model):
    """The conv layers of model, in order, as `catdog info` lists them."""
    r = run("info", model)
    names = [ln.split()[0] for ln in r.stdout.splitlines()
             if len(ln.split()) > 1 and ln.split()[1] == "conv2d"]
    check(r.returncode == 0 and names, f"catdog info lists conv layers ({r.stderr.strip()})")
    return names or ["?"]


def input_side(model):
    """The side of model's square input, as `catdog info` prints it."""
    r = run("info", model)
    m = re.search(r"^input\s+(\d+)x(\d+)x", r.stdout, re.M)
    check(r.returncode == 0 and m and m.group(1) == m.group(2),
          f"catdog info gives a square input ({r.stderr.strip()})")
    return int(m.group(1)) if m else 0


SIDE = input_side(SHIPPED)


def with_resize(src, dst, resize):
    """A copy of model file src whose preprocessing uses `resize`."""
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    meta = json.loads(header["__metadata__"]["catdog"])
    meta["preprocess"]["resize"] = resize
    header["__metadata__"]["catdog"] = json.dumps(meta)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


def check_files(tmp):
    photo = os.path.join(DATA, "dog.701.jpg")
    out, ovl = os.path.join(tmp, "heat.png"), os.path.join(tmp, "overlay.png")
    r = run("cam", "--model", SHIPPED, "--out", out, "--overlay", ovl, photo)
    check(r.returncode == 0, f"cam --out --overlay exits 0 ({r.stderr.strip()})")
    lines = r.stdout.splitlines()
    check(len(lines) == 3, f"three lines printed: {lines}")
    fields = lines[0].split("\t") if lines else []
    check(fields[:2] == [photo, "dog"] and fields[3:] == [conv_layers(SHIPPED)[-1]] and
          0.5 <= float(fields[2]) <= 1.0,
          f"first line: IMAGE, label, probability, default layer the last conv: {fields}")
    check(len(lines) == 3 and lines[1].startswith(out + "\t") and
          lines[2].startswith(ovl + "\t"), "one line per file, starting with its path")
    heat, over = Image.open(out), Image.open(ovl)
    check(heat.mode == "L" and heat.size == (349, 437), f"heat map: {heat.mode} {heat.size}")
    check(over.mode == "RGB" and over.size == (349, 437), f"overlay: {over.mode} {over.size}")
    h = np.asarray(heat)
    check(h.max() == 255, f"the hottest place is 255 (max {h.max()})")
    # overlay = photo / 2 + viridis(heat) / 2: where the heat is 0 the
    # colour is viridis' first entry (68, 1, 84); PIL decodes the photo
    # with the same libjpeg, up to a level or two of IDCT rounding.
    o = np.asarray(over, dtype=np.int32)
    p = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int32)
    cold = h == 0
    if cold.any():
        want = np.round(0.5 * p[cold] + 0.5 * np.array([68, 1, 84])).astype(np.int32)
        err = int(np.abs(o[cold] - want).max())
        check(err <= 2, f"cold places: half photo, half viridis(0) (max error {err})")
    else:
        check(False, "some place of the heat map is cold")
    hot = h == 255
    want = np.round(0.5 * p[hot] + 0.5 * np.array([253, 231, 37])).astype(np.int32)
    err = int(np.abs(o[hot] - want).max())
    check(err <= 2, f"hottest places: half photo, half viridis(255) (max error {err})")

    # An earlier layer; a gray photo still gives an RGB overlay.
    gray = os.path.join(DATA, "gray.jpg")
    r = run("cam", "--model", SHIPPED, "--layer", "conv2", "--out", out, "--overlay", ovl, gray)
    check(r.returncode == 0 and r.stdout.split("\t")[3].startswith("conv2"),
          f"--layer conv2 on a gray photo ({r.stderr.strip()})")
    check(Image.open(ovl).mode == "RGB" and Image.open(out).size == (350, 261),
          "gray photo: RGB overlay, heat map of its size")

    # A crop model sees the centred square of a portrait photo (349x437:
    # rows 44 to 392); the heat map is 0 above and below.
    crop = os.path.join(tmp, "crop.safetensors")
    with_resize(SHIPPED, crop, "crop")
    r = run("cam", "--model", crop, "--out", out, photo)
    check(r.returncode == 0, f"crop model ({r.stderr.strip()})")
    h = np.asarray(Image.open(out))
    check(h.shape == (437, 349) and not h[:44].any() and not h[393:].any() and
          h[44:393].max() == 255,
          f"crop model: heat only on rows 44..392 (rows with heat: "
          f"{np.nonzero(h.any(axis=1))[0][[0, -1]].tolist() if h.any() else 'none'})")


def check_occlusion(tmp):
    """--method occlusion writes the same files; its map follows the
    window and stride; --fill blur works; what it prints."""
    photo = os.path.join(DATA, "dog.701.jpg")
    out, ovl = os.path.join(tmp, "occ.png"), os.path.join(tmp, "occ-overlay.png")
    r = run("cam", "--model", SHIPPED, "--method", "occlusion", "--out", out, "--overlay", ovl,
            photo)
    check(r.returncode == 0, f"cam --method occlusion exits 0 ({r.stderr.strip()})")
    lines = r.stdout.splitlines()
    fields = lines[0].split("\t") if lines else []
    check(len(lines) == 3 and fields[:2] == [photo, "dog"] and fields[3:] == ["occlusion"],
          f"first line: IMAGE, label, probability, occlusion: {fields}")
    check(len(lines) == 3 and f"({SIDE}x{SIDE} map)" in lines[1], f"the map is the input's size: {lines}")
    h = np.asarray(Image.open(out))
    check(h.shape == (437, 349) and h.max() == 255 and Image.open(ovl).mode == "RGB",
          f"occlusion heat map: {h.shape}, max {h.max()}")
    # Gradcam's output is what it was: same first line but for the layer.
    g = run("cam", "--model", SHIPPED, "--out", os.path.join(tmp, "g.png"), photo)
    check(g.returncode == 0 and g.stdout.split("\t")[:3] == fields[:3],
          "gradcam and occlusion print the same verdict")
    # A window as large as the input hides everything at once: one drop,
    # the same for every pixel the network sees.
    r = run("cam", "--model", SHIPPED, "--method", "occlusion", "--window", str(SIDE), "--out", out,
            photo)
    h = np.asarray(Image.open(out))
    check(r.returncode == 0 and h.min() == 255,
          f"--window {SIDE}: one window, the map flat at 255 (min {h.min()}; {r.stderr.strip()})")
    r = run("cam", "--model", SHIPPED, "--method", "occlusion", "--fill", "blur", "--window", "30",
            "--stride", "20", "--out", out, photo)
    check(r.returncode == 0 and np.asarray(Image.open(out)).max() == 255,
          f"--fill blur --window 30 --stride 20 ({r.stderr.strip()})")


def check_integrated_gradients(tmp):
    """--method integrated-gradients writes the same files at the input's
    resolution and prints the completeness line; --baseline, --steps N;
    without --steps (auto) the line says how many steps were needed for
    1%, or, where F(image) = F(baseline), that 1% was not met, with a
    warning that says why."""
    photo = os.path.join(DATA, "dog.701.jpg")
    out, ovl = os.path.join(tmp, "ig.png"), os.path.join(tmp, "ig-overlay.png")
    for baseline in ("black", "blur"):
        r = run("cam", "--model", SHIPPED, "--method", "integrated-gradients", "--baseline",
                baseline, "--steps", "64", "--out", out, "--overlay", ovl, photo)
        check(r.returncode == 0, f"cam --method integrated-gradients exits 0 ({r.stderr.strip()})")
        lines = r.stdout.splitlines()
        fields = lines[0].split("\t") if lines else []
        check(len(lines) == 4 and fields[:2] == [photo, "dog"] and
              fields[3:] == ["integrated-gradients"], f"first line: {fields}")
        m = re.match(r"completeness: (\w+) baseline, (\d+) steps: the attributions sum to "
                     r"(-?[\d.]+), F\(image\) - F\(baseline\) = (-?[\d.]+), error ([\d.]+)%$",
                     lines[1] if len(lines) > 1 else "")
        check(m is not None and m.group(1) == baseline and m.group(2) == "64",
              f"the completeness line: {lines[1:2]}")
        if m:
            total, target, error = (float(m.group(i)) for i in (3, 4, 5))
            check(target > 0 and abs(total - target) <= 0.01 * target and error <= 1.0 and
                  abs(error - 100 * abs(total - target) / target) <= 0.02,
                  f"{baseline}: the attributions sum to F(image) - F(baseline) within 1%: "
                  f"{lines[1]}")
        check(len(lines) == 4 and f"({SIDE}x{SIDE} map)" in lines[2], f"the map is the input's: {lines}")
        h = np.asarray(Image.open(out))
        check(h.shape == (437, 349) and h.max() == 255 and Image.open(ovl).mode == "RGB",
              f"integrated-gradients heat map: {h.shape}, max {h.max()}")
    for steps in ([], ["--steps", "auto"]):
        r = run("cam", "--model", SHIPPED, "--method", "integrated-gradients", *steps,
                "--out", out, photo)
        lines = r.stdout.splitlines()
        m = re.match(r"completeness: black baseline, (\d+) steps \(as needed for 1%\): the "
                     r"attributions sum to (-?[\d.]+), F\(image\) - F\(baseline\) = (-?[\d.]+), "
                     r"error ([\d.]+)%$", lines[1] if len(lines) > 1 else "")
        check(r.returncode == 0 and m is not None and
              int(m.group(1)) in (32, 96, 288, 864, 2592) and float(m.group(4)) <= 1.0 and
              r.stderr == "",
              f"{steps or 'no --steps'}: steps as needed for 1% ({lines[1:2]}, "
              f"{r.stderr.strip()})")
    # A black photo is the black baseline: F(image) - F(baseline) = 0, the
    # error is not defined, and auto stops at its first count.
    black = os.path.join(tmp, "black.jpg")
    Image.new("RGB", (64, 48)).save(black)
    r = run("cam", "--model", SHIPPED, "--method", "integrated-gradients", "--out", out, black)
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and len(lines) > 1 and
          lines[1].startswith("completeness: black baseline, 32 steps (--steps auto, 1% not "
                              "met): ") and
          "F(image) = F(baseline), so the completeness error is not defined" in r.stderr,
          f"a black photo: 1% not met, and why ({lines[1:2]}, {r.stderr.strip()})")


def check_trust(tmp):
    """--check prints a table per method: header, one row per image, the
    mean and the count of images where the map beats the random one."""
    cat, dog = os.path.join(DATA, "cat.178.jpg"), os.path.join(DATA, "dog.409.jpg")
    r = run("cam", "--model", SHIPPED, "--check", "--method", "gradcam", cat, dog)
    check(r.returncode == 0, f"cam --check --method gradcam exits 0 ({r.stderr.strip()})")
    lines = [line for line in r.stdout.splitlines() if line]
    convs = conv_layers(SHIPPED)
    check(lines[0].startswith(f"gradcam ({convs[-1]}), fill blur:"), f"title: {lines[:1]}")
    header = [ln for ln in lines if ln.startswith("image ")]
    check(len(header) == 1 and header[0].split() ==
          ["image", "del", "random", "centre", "ins", "random", "centre",
           "fc"] + convs[::-1], f"columns: {header}")
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines
            if ln.split()[0] in (cat, dog, "mean")}
    check(set(rows) == {cat, dog, "mean"} and
          all(len(v) == 7 + len(convs) for v in rows.values()),
          f"a row per image and the mean: {rows}")
    if set(rows) == {cat, dog, "mean"}:
        v = {k: [float(x) for x in rows[k][:6]] for k in rows}
        check(all(0 <= x <= 1 for k in v for x in v[k]), "areas under probabilities are in [0, 1]")
        check(all(abs(v["mean"][i] - (v[cat][i] + v[dog][i]) / 2) <= 0.0006 for i in range(6)),
              "the mean row is the mean")
        rho = [x for k in (cat, dog) for x in rows[k][6:] if x != "n/a"]
        check(all(-1 <= float(x) <= 1 for x in rho), f"rank correlations in [-1, 1]: {rho}")
    check(lines[-1].startswith("the map beats the random map on deletion for ") and
          lines[-1].endswith(" of 2"), f"last line: {lines[-1:]}")
    check("occlusion" not in r.stdout, "--method gradcam: one table")
    r2 = run("cam", "--model", SHIPPED, "--check", "--method", "gradcam", cat, dog)
    check(r2.stdout == r.stdout, "--check prints the same numbers twice (fixed seeds)")
    r = run("cam", "--model", SHIPPED, "--check", "--window", "50", "--stride", "50",
            "--steps", "4", dog)
    titles = [ln for ln in r.stdout.splitlines() if ", fill blur:" in ln]
    check(r.returncode == 0 and len(titles) == 3 and titles[1].startswith("occlusion 50/50") and
          titles[2].startswith("integrated-gradients (black baseline, 4 steps)"),
          f"--check without --method: gradcam, occlusion, integrated gradients ({titles}; "
          f"{r.stderr.strip()})")
    last = r.stdout.splitlines()[-1:]
    check(re.fullmatch(r"completeness: 4 steps, worst error [\d.]+%", last[0] if last else ""),
          f"--check --steps 4: the completeness line ({last})")
    # Steps as needed: the title says so, the last line the steps used.
    r = run("cam", "--model", SHIPPED, "--check", "--method", "integrated-gradients", dog)
    lines = r.stdout.splitlines()
    m = re.fullmatch(r"completeness: (\d+) to (\d+) steps \(as needed for 1%\), met for "
                     r"(\d) of 1 images; worst error ([\d.]+)%", lines[-1] if lines else "")
    check(r.returncode == 0 and lines[0:1] and
          lines[0].startswith("integrated-gradients (black baseline, --steps auto), fill blur:") and
          m is not None and m.group(1) == m.group(2) and m.group(3) == "1" and
          float(m.group(4)) <= 1.0,
          f"--check, steps as needed: title and completeness line ({lines[0:1]}, "
          f"{lines[-1:]}; {r.stderr.strip()})")


def check_errors(tmp):
    out = os.path.join(tmp, "e.png")
    cat = os.path.join(DATA, "cat.178.jpg")
    cases = [
        ("no --out", ["cam", cat], 2, "--out FILE is required"),
        ("no image", ["cam", "--out", out], 2, "no IMAGE given"),
        ("two images", ["cam", "--out", out, cat, cat], 2, "one IMAGE at a time"),
        ("unknown layer", ["cam", "--model", SHIPPED, "--layer", "nope", "--out", out, cat], 2,
         "its conv layers are: " + " ".join(conv_layers(SHIPPED))),
        ("not a conv layer", ["cam", "--model", SHIPPED, "--layer", "pool1", "--out", out, cat],
         2, "'pool1' is not a conv layer"),
        ("same file twice", ["cam", "--out", out, "--overlay", out, cat], 2, "the same file"),
        ("empty --out", ["cam", "--out=", cat], 2, "--out needs a file name"),
        ("not a JPEG", ["cam", "--model", SHIPPED, "--out", out, os.path.join(DATA, "text.jpg")],
         1, "text.jpg"),
        ("truncated model", ["cam", "--model", os.path.join(DATA, "text.jpg"), "--out", out, cat],
         1, "text.jpg"),
        ("folder missing", ["cam", "--model", SHIPPED,
                            "--out", os.path.join(tmp, "no", "such", "dir", "h.png"), cat],
         1, "h.png"),
        ("unknown method", ["cam", "--method", "lime", "--out", out, cat], 2,
         "--method must be gradcam, occlusion or integrated-gradients, not 'lime'"),
        ("unknown baseline", ["cam", "--baseline", "white", "--out", out, cat], 2,
         "--baseline must be black or blur, not 'white'"),
        ("steps 0", ["cam", "--method", "integrated-gradients", "--steps", "0", "--out", out,
                     cat], 2, "--steps must be auto or a whole number from 1 to 8192, not '0'"),
        ("steps x", ["cam", "--method", "integrated-gradients", "--steps", "Auto", "--out", out,
                     cat], 2, "--steps must be auto or a whole number from 1 to 8192, not 'Auto'"),
        ("steps 8193", ["cam", "--steps", "8193", "--out", out, cat], 2,
         "--steps must be auto or a whole number from 1 to 8192, not '8193'"),
        ("unknown fill", ["cam", "--fill", "black", "--out", out, cat], 2,
         "--fill must be gray or blur"),
        ("window 0", ["cam", "--method", "occlusion", "--window", "0", "--out", out, cat], 2,
         "--window must be a whole number"),
        ("stride x", ["cam", "--method", "occlusion", "--stride", "x", "--out", out, cat], 2,
         "--stride must be a whole number"),
        ("window over the input", ["cam", "--model", SHIPPED, "--method", "occlusion",
                                   "--window", str(SIDE + 1), "--out", out, cat], 1,
         f"window {SIDE + 1} is not in 1 .. {SIDE}"),
        ("--check with --out", ["cam", "--check", "--out", out, cat], 2,
         "--check writes no files"),
        ("--check without images", ["cam", "--check"], 2, "no IMAGE given"),
        ("--check, a broken photo", ["cam", "--model", SHIPPED, "--check", "--method", "gradcam",
                                     os.path.join(DATA, "text.jpg")], 1, "text.jpg"),
        ("maps --top -1", ["maps", "--top", "-1", cat], 2, "--top must be a whole number"),
        ("maps --top x", ["maps", "--top", "x", cat], 2, "--top must be a whole number"),
        ("maps without --out or --top", ["maps", cat], 2, "--out DIR is required"),
    ]
    for what, args, status, message in cases:
        r = run(*args)
        check(r.returncode == status and message in r.stderr,
              f"{what}: exit {r.returncode} (want {status}), stderr says '{message}' "
              f"({r.stderr.strip()[:160]})")
    check(not os.path.exists(out), "no file written by a failing command")
    r = run("cam", "--help")
    check(r.returncode == 0 and "--overlay" in r.stdout and "viridis" in r.stdout and
          "--method METHOD" in r.stdout and "lower is better" in r.stdout, "cam --help")
    r = run("--help")
    check(" cam " in r.stdout, "catdog --help lists cam")


def main():
    if not os.environ.get("CATDOG"):
        print("usage: CATDOG=catdog cli_cam.py", file=sys.stderr)
        return 2
    pycheck.need_shipped()
    with tempfile.TemporaryDirectory() as tmp:
        check_files(tmp)
        check_occlusion(tmp)
        check_integrated_gradients(tmp)
        check_trust(tmp)
        check_errors(tmp)
    return pycheck.done("cli_cam")


if __name__ == "__main__":
    sys.exit(main())
