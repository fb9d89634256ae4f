#!/usr/bin/env python3
"""Forward pass of our C core against PyTorch on random weights exchanged
as safetensors: max abs error <= 1e-4 on the logits and on every conv tap.

usage: parity.py PARITY_RUN_BINARY
Networks: the article's (150x150x3 -> conv 32 -> pool -> conv 64 -> pool ->
conv 128 -> pool -> dense 512 -> dense 1), in F32 and F16 files, and one
with batch-norm, stride 2, 'same' and integer padding, gap and flatten.
Exits 77 (skip) when torch or safetensors are missing.
"""
import os
import subprocess
import sys
import tempfile

import pycheck
from pycheck import check

np, torch, ct = pycheck.need("numpy", "torch", "catdog_torch")

TOL = 1e-4
BN_NET = {
    "schema": 1, "name": "bn-stride-same", "input": [64, 48, 3],
    "layers": [
        {"type": "conv2d", "name": "c1", "filters": 16, "kernel": 3, "stride": 2, "padding": "same"},
        {"type": "batchnorm", "name": "bn1", "eps": 1e-3},
        {"type": "relu", "name": "r1"},
        {"type": "conv2d", "name": "c2", "filters": 32, "kernel": 3, "stride": 1, "padding": "same",
         "bias": False},
        {"type": "batchnorm", "name": "bn2"},
        {"type": "relu", "name": "r2"},
        {"type": "maxpool", "name": "p2", "size": 2, "stride": 2},
        {"type": "conv2d", "name": "c3", "filters": 24, "kernel": 5, "stride": 2, "padding": 1},
        {"type": "relu", "name": "r3"},
        {"type": "flatten", "name": "flat"},
        {"type": "dense", "name": "fc1", "units": 16},
        {"type": "relu", "name": "r4"},
        {"type": "dense", "name": "fc2", "units": 1},
        {"type": "sigmoid", "name": "prob"},
    ],
}
GAP_NET = {
    "schema": 1, "name": "gap-head", "input": [40, 40, 3],
    "layers": [
        {"type": "conv2d", "name": "c1", "filters": 8, "kernel": 3, "stride": 1, "padding": "same"},
        {"type": "relu", "name": "r1"},
        {"type": "batchnorm", "name": "bn1"},
        {"type": "conv2d", "name": "c2", "filters": 12, "kernel": 3, "stride": 2, "padding": "valid"},
        {"type": "gap", "name": "gap"},
        {"type": "batchnorm", "name": "bn2"},
        {"type": "dense", "name": "fc", "units": 1},
    ],
}

def run_case(binary, tmp, spec, dtype, seed, n=2):
    name = f"{spec['name']}-{str(dtype).split('.')[-1]}"
    gen = torch.Generator().manual_seed(seed)
    net = ct.CatdogNet(spec)
    net.randomize(gen)
    net.eval()
    path = os.path.join(tmp, name + ".safetensors")
    net.save(path, dtype=dtype)
    if dtype != torch.float32:
        net = ct.load(path)  # the reference uses the rounded weights
    h, w, c = spec["input"]
    x = torch.rand((n, c, h, w), generator=gen)
    inp = os.path.join(tmp, name + ".in")
    x.permute(0, 2, 3, 1).contiguous().numpy().astype("<f4").tofile(inp)
    taps = []
    with torch.no_grad():
        logits = net(x, taps)

    outputs = []
    for threads in (1, 2):
        out = os.path.join(tmp, f"{name}-{threads}.out")
        r = subprocess.run([binary, path, inp, str(n), out, str(threads)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            check(False, f"{name}: parity_run failed: {r.stderr.strip()}")
            return
        outputs.append(np.fromfile(out, dtype="<f4"))
    check(np.array_equal(outputs[0], outputs[1]), f"{name}: 1 and 2 threads give identical bytes")

    data = outputs[0]
    lines = [l.split() for l in r.stdout.splitlines() if l.startswith("tap ")]
    check(len(lines) == len(taps), f"{name}: {len(lines)} taps (PyTorch: {len(taps)})")
    err = float(np.max(np.abs(data[:n] - logits.numpy())))
    check(err <= TOL, f"{name}: logits max abs error {err:.3g} (ours {data[:n]}, torch {logits.numpy()})")
    off = n
    for (_, tname, th, tw, tc), ref in zip(lines, taps):
        th, tw, tc = int(th), int(tw), int(tc)
        size = n * th * tw * tc
        ours = data[off:off + size].reshape(n, th, tw, tc)
        off += size
        ref_nhwc = ref.detach().permute(0, 2, 3, 1).numpy()
        if ref_nhwc.shape != ours.shape:
            check(False, f"{name}: tap {tname} shape {ours.shape} vs torch {ref_nhwc.shape}")
            continue
        err = float(np.max(np.abs(ours - ref_nhwc)))
        check(err <= TOL, f"{name}: tap {tname} {th}x{tw}x{tc} max abs error {err:.3g}")
    check(off == data.size, f"{name}: output size {data.size} floats as expected")


def main():
    if len(sys.argv) != 2:
        print("usage: parity.py PARITY_RUN_BINARY", file=sys.stderr)
        return 2
    binary = sys.argv[1]
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        run_case(binary, tmp, ct.ARTICLE, torch.float32, 1)
        run_case(binary, tmp, ct.ARTICLE, torch.float16, 2)
        run_case(binary, tmp, ct.ARTICLE, torch.bfloat16, 3)
        run_case(binary, tmp, BN_NET, torch.float32, 4, n=3)
        run_case(binary, tmp, GAP_NET, torch.float32, 5)
    return pycheck.done("parity")


if __name__ == "__main__":
    sys.exit(main())
