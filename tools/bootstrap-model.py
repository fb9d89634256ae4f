#!/usr/bin/env python3
"""Train a stop-gap default model briefly with PyTorch.

The shipped model is meant to come from our own C trainer (`catdog train`).
Until that model exists, this script gives the CLI and the plug-in a real,
if weak, model: the article's network trained for a few minutes on a
subset of the data set, with the same preprocessing recipe the C core
applies (squash to 150x150 with an antialiased bilinear filter, x/255).

usage (inside tools/gimp3-env):
  tools/bootstrap-model.py DATA_DIR OUT.safetensors [--train N] [--val N]
                           [--epochs E] [--seed S]
DATA_DIR is laid out as DATA_DIR/{train,validation}/{cats,dogs}/*.jpg.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import catdog_torch as ct  # noqa: E402


def load_split(root, split, per_class, rng):
    xs, ys = [], []
    for label, sub in ((0, "cats"), (1, "dogs")):
        d = os.path.join(root, split, sub)
        names = sorted(os.listdir(d))
        rng.shuffle(names)
        for name in names[:per_class]:
            with Image.open(os.path.join(d, name)) as im:
                im = im.convert("RGB").resize((150, 150), Image.BILINEAR)
                xs.append(np.asarray(im, dtype=np.uint8))
                ys.append(label)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.tensor(ys, dtype=torch.float32)


def evaluate(net, x, y):
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[i:i + 100]) for i in range(0, len(x), 100)])
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    acc = float(((p >= 0.5).float() == y).float().mean())
    ll = float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
    return acc, ll


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=2000, help="training images per class")
    ap.add_argument("--val", type=int, default=500, help="validation images per class")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    xt, yt = load_split(a.data, "train", a.train, rng)
    xv, yv = load_split(a.data, "validation", a.val, rng)
    print(f"loaded {len(xt)} train / {len(xv)} validation images in {time.time() - t0:.0f} s",
          flush=True)

    net = ct.CatdogNet(ct.ARTICLE)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.time()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 32):
            idx = perm[i:i + 32]
            xb = xt[idx]
            flip = torch.rand(len(idx)) < 0.5
            xb[flip] = xb[flip].flip(3)  # horizontal flips only: brief run
            loss = F.binary_cross_entropy_with_logits(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc, ll = evaluate(net, xv, yv)
        print(f"epoch {epoch + 1}: loss {loss.item():.3f} val accuracy {acc:.3f} "
              f"logloss {ll:.3f} ({time.time() - t0:.0f} s)", flush=True)

    minutes = (time.time() - t0) / 60
    extra = {
        "metrics": {"val_accuracy": round(acc, 4), "val_logloss": round(ll, 4), "n": len(xv),
                    "note": "measured in PyTorch on a validation subset"},
        "training": {"tool": "tools/bootstrap-model.py", "framework": "pytorch",
                     "train_images": len(xt), "epochs": a.epochs, "seed": a.seed,
                     "minutes": round(minutes, 1), "stop_gap": True},
    }
    net.eval()
    net.save(a.out, dtype=torch.float16, extra=extra)
    print(f"wrote {a.out}: accuracy {acc:.3f}, log loss {ll:.3f}, {minutes:.1f} min of training")


if __name__ == "__main__":
    main()
