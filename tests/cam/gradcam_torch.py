#!/usr/bin/env python3
"""Grad-CAM of our C core against a PyTorch Grad-CAM (autograd on the
predicted label's logit, at every conv tap), within 1e-3 after
normalisation to [0, 1].

usage: gradcam_torch.py CAM_RUN_BINARY
Networks: the shipped model (weights/catdog.safetensors) on two photos of
tests/data, the article's network with random weights (saved by PyTorch in
its own (c, h, w) flatten order), and a small net with a batch-norm after
the ReLU, a stride-2 conv without ReLU and global average pooling.
Exits 77 (skip) when torch, safetensors or the shipped model are missing.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycheck  # noqa: E402
from pycheck import DATA, SHIPPED, check  # noqa: E402

np, torch, ct = pycheck.need("numpy", "torch", "catdog_torch")

TOL = 1e-3
GAP_NET = {
    "schema": 1, "name": "gap-bn", "input": [48, 40, 3],
    "layers": [
        {"type": "conv2d", "name": "c1", "filters": 8, "kernel": 3, "padding": "same"},
        {"type": "relu", "name": "r1"},
        {"type": "batchnorm", "name": "bn1"},
        {"type": "maxpool", "name": "p1", "size": 2, "stride": 2},
        {"type": "conv2d", "name": "c2", "filters": 12, "kernel": 3, "stride": 2},
        {"type": "conv2d", "name": "c3", "filters": 16, "kernel": 3, "padding": 1},
        {"type": "batchnorm", "name": "bn3"},
        {"type": "relu", "name": "r3"},
        {"type": "gap", "name": "gap"},
        {"type": "dropout", "name": "drop", "rate": 0.3},
        {"type": "dense", "name": "fc", "units": 1},
        {"type": "sigmoid", "name": "prob"},
    ],
}

def torch_gradcams(net, x_nhwc):
    """The logit and, per tap, the normalised Grad-CAM of the predicted
    label's logit (-logit when labels[0] is predicted)."""
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous()
    taps = []
    logit = net(x, taps)[0]
    sign = 1.0 if logit.item() >= 0 else -1.0
    grads = torch.autograd.grad(sign * logit, taps)
    cams = []
    for a, g in zip(taps, grads):
        weight = g.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weight * a).sum(dim=1))[0].detach().double().numpy()
        top = cam.max()
        cams.append(cam / top if top > 0 else cam)
    return logit.item(), cams


def run_case(binary, tmp, name, model_path, net, x_nhwc):
    inp = os.path.join(tmp, name + ".in")
    out = os.path.join(tmp, name + ".cam")
    x_nhwc.astype("<f4").tofile(inp)
    r = subprocess.run([binary, "cam", model_path, inp, out], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, f"{name}: cam_run failed: {r.stderr.strip()}")
        return
    lines = r.stdout.split("\n")
    logit = float(lines[0].split()[1])
    taps = [l.split() for l in lines[1:] if l.startswith("tap ")]
    data = np.fromfile(out, dtype="<f4")
    ref_logit, ref_cams = torch_gradcams(net, x_nhwc[None])
    check(abs(logit - ref_logit) <= 1e-4,
          f"{name}: logit {logit:.6f}, PyTorch {ref_logit:.6f}")
    check(len(taps) == len(ref_cams), f"{name}: {len(taps)} taps (PyTorch: {len(ref_cams)})")
    off = lit_maps = 0
    for (_, tname, h, w, _c, cam_logit), ref in zip(taps, ref_cams):
        h, w = int(h), int(w)
        ours = data[off:off + h * w].reshape(h, w)
        off += h * w
        check(abs(float(cam_logit) - logit) <= 1e-4,
              f"{name} {tname}: Grad-CAM's logit {float(cam_logit):.6f}, forward {logit:.6f}")
        if ref.shape != ours.shape:
            check(False, f"{name} {tname}: map {ours.shape}, PyTorch {ref.shape}")
            continue
        err = float(np.max(np.abs(ours - ref)))
        lit = int((ref > 0).sum())
        lit_maps += lit > 0
        check(err <= TOL, f"{name} {tname} {h}x{w}: max abs difference {err:.2g} "
              f"({lit} of {h * w} places count)")
    check(off == data.size, f"{name}: {data.size} values as expected")
    # A layer may have no place that counts for the label (both agree on
    # all 0), but maps of all 0 everywhere would prove nothing.
    check(lit_maps >= max(1, len(taps) - 1),
          f"{name}: {lit_maps} of {len(taps)} maps have places that count")


def photo_input(binary, tmp, model_path, photo):
    path = os.path.join(tmp, os.path.basename(photo) + ".in")
    r = subprocess.run([binary, "prep", model_path, photo, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cam_run prep {photo}: {r.stderr.strip()}")
    return np.fromfile(path, dtype="<f4")


def main():
    if len(sys.argv) != 2:
        print("usage: gradcam_torch.py CAM_RUN_BINARY", file=sys.stderr)
        return 2
    binary = sys.argv[1]
    pycheck.need_shipped()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        shipped = ct.load(SHIPPED)
        h, w, c = shipped.spec["input"]
        for photo in ("cat.178.jpg", "dog.409.jpg"):
            x = photo_input(binary, tmp, SHIPPED, os.path.join(DATA, photo))
            run_case(binary, tmp, "catdog-v1 " + photo, SHIPPED, shipped, x.reshape(h, w, c))

        gen = torch.Generator().manual_seed(11)
        for spec, photo in ((ct.ARTICLE, "cat.835.jpg"), (GAP_NET, None)):
            net = ct.CatdogNet(spec)
            net.randomize(gen)
            net.eval()
            path = os.path.join(tmp, spec["name"] + ".safetensors")
            net.save(path)
            h, w, c = spec["input"]
            if photo:
                x = photo_input(binary, tmp, path, os.path.join(DATA, photo)).reshape(h, w, c)
            else:
                x = torch.rand((h, w, c), generator=gen).numpy()
            run_case(binary, tmp, f"{spec['name']} (random weights)", path, net, x)
    return pycheck.done("gradcam_torch")


if __name__ == "__main__":
    sys.exit(main())
