#!/usr/bin/env python3
"""Grad-CAM and occlusion look at the animal: a photo from tests/data on
one half of a picture and a plain gray half beside it; the shipped model
must still see the photo's animal, and `catdog cam` (default layer: the
last conv; and `--method occlusion`, window 15 and stride 15 to keep it
quick under the sanitizers) must put at least 70% of
the heat map's mass (the sum of its pixels) on the photo's half, with the
photo on the left and on the right.  Two cats and two dogs.

usage: composition.py        ($CATDOG: the catdog command)
Exits 77 (skip) when numpy, PIL or the shipped model are missing.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycheck  # noqa: E402
from pycheck import DATA, SHIPPED, check  # noqa: E402

np, Image = pycheck.need("numpy", "PIL.Image")

PHOTOS = [("cat.178.jpg", "cat"), ("cat.835.jpg", "cat"),
          ("dog.409.jpg", "dog"), ("dog.701.jpg", "dog")]
MIN_SHARE = 0.70
# Composites whose label the shipped model (catdog-v2) gets wrong, as
# measured: cat.178.jpg on the right of the gray half is dog 0.504 (the
# model before, a second stage at 150 px: 0.62; stage 1 alone: 0.69; it
# is cat 0.998 alone; catdog-v1 had it right).  Their label check expects
# the mistake and fails once the label is right, so that the list
# shrinks with better models; their heat checks stay as for the others.
KNOWN_WRONG = {("cat.178.jpg", "right")}


def compose(photo, left, path):
    """The photo and a gray (128) panel of its size, side by side."""
    w, h = photo.size
    canvas = Image.new("RGB", (2 * w, h), (128, 128, 128))
    canvas.paste(photo, (0 if left else w, 0))
    canvas.save(path, quality=95)


def main():
    catdog = os.environ.get("CATDOG")
    if not catdog:
        print("usage: CATDOG=catdog composition.py", file=sys.stderr)
        return 2
    pycheck.need_shipped()
    with tempfile.TemporaryDirectory() as tmp:
        for name, animal in PHOTOS:
            photo = Image.open(os.path.join(DATA, name)).convert("RGB")
            w, h = photo.size
            for method, left in ((mt, lt) for mt in ("gradcam", "occlusion")
                                 for lt in (True, False)):
                side = ("left" if left else "right") + ("" if method == "gradcam" else
                                                        ", occlusion")
                path = os.path.join(tmp, f"{name}-{side.replace(', ', '-')}.jpg")
                heat_path = path + ".png"
                compose(photo, left, path)
                occlusion = ["--stride", "15"] if method == "occlusion" else []
                r = subprocess.run([catdog, "cam", "--model", SHIPPED, "--method", method,
                                    *occlusion, "--out", heat_path, path],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    check(False, f"{name} {side}: catdog cam failed: {r.stderr.strip()}")
                    continue
                fields = r.stdout.splitlines()[0].split("\t")
                if (name, "left" if left else "right") in KNOWN_WRONG:
                    check(fields[1] != animal,
                          f"{name} on the {side}: classified {fields[1]} ({fields[2]}), a "
                          f"known mistake (right now: drop it from KNOWN_WRONG)")
                else:
                    check(fields[1] == animal,
                          f"{name} on the {side}: classified {fields[1]} ({fields[2]}), "
                          f"layer {fields[3]}")
                heat = np.asarray(Image.open(heat_path), dtype=np.float64)
                check(heat.shape == (h, 2 * w), f"{name} {side}: heat map {heat.shape[::-1]}")
                total = heat.sum()
                on_photo = heat[:, :w].sum() if left else heat[:, w:].sum()
                share = on_photo / total if total > 0 else 0.0
                check(share >= MIN_SHARE,
                      f"{name} on the {side}: {share:.1%} of the heat on the photo's half")
    return pycheck.done("composition")


if __name__ == "__main__":
    sys.exit(main())
