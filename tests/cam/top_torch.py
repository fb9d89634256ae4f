#!/usr/bin/env python3
"""`catdog maps --top K` against PyTorch: each conv layer's K channels of
highest mean activation, computed by PyTorch on the same input, are the
ones listed, in the same order, with the same means (1e-4); channels whose
means PyTorch cannot tell apart (closer than 1e-5) may swap.  With --out,
each mosaic holds K maps.

usage: top_torch.py CAM_RUN_BINARY      ($CATDOG: the catdog command)
Models: the shipped one, and the article's network with random weights.
Exits 77 (skip) when torch, safetensors or the shipped model are missing.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycheck  # noqa: E402
from pycheck import DATA, SHIPPED, check  # noqa: E402

np, torch, ct = pycheck.need("numpy", "torch", "catdog_torch")

TIE = 1e-5

def torch_means(net, spec, x):
    """Per conv layer (in order): its name and its channels' means."""
    h, w, c = spec["input"]
    t = torch.from_numpy(x.reshape(1, h, w, c)).permute(0, 3, 1, 2).contiguous()
    taps = []
    with torch.no_grad():
        net(t, taps)
    names = [l["name"] for l in spec["layers"] if l["type"] == "conv2d"]
    return [(n, a[0].double().mean(dim=(1, 2)).numpy()) for n, a in zip(names, taps)]


def check_listing(name, k, line, ref_name, means):
    fields = line.split("\t")
    check(fields[0] == ref_name, f"{name}: line for {fields[0]}, expected {ref_name}")
    pairs = [f.split(":") for f in fields[1:]]
    chans = [int(p[0]) for p in pairs]
    listed = np.array([float(p[1]) for p in pairs])
    want = min(k, means.size) if k else means.size
    check(len(chans) == want, f"{name} {ref_name}: {len(chans)} channels listed, expected {want}")
    if not chans:
        return
    ref = means[chans]
    check(np.max(np.abs(listed - ref)) <= 1e-4,
          f"{name} {ref_name}: listed means match PyTorch's (max diff "
          f"{np.max(np.abs(listed - ref)):.2g})")
    # Decreasing in PyTorch's means, and nothing left out ranks higher.
    ordered = all(ref[i] >= ref[i + 1] - TIE for i in range(len(ref) - 1))
    rest = np.delete(means, chans)
    beaten = rest.size > 0 and rest.max() > ref[-1] + TIE
    order = np.argsort(-means, kind="stable")[:want]
    check(ordered and not beaten,
          f"{name} {ref_name}: top {want} {chans[:8]}{'...' if want > 8 else ''} "
          f"(PyTorch: {order[:8].tolist()}{'...' if want > 8 else ''})")


def run_model(binary, catdog, tmp, name, model_path, net, photo):
    spec = net.spec
    inp = os.path.join(tmp, name + ".in")
    r = subprocess.run([binary, "prep", model_path, photo, inp], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, f"{name}: cam_run prep failed: {r.stderr.strip()}")
        return
    means = torch_means(net, spec, np.fromfile(inp, dtype="<f4"))
    for k in (5, 0):
        out_dir = os.path.join(tmp, f"{name}-maps-{k}")
        r = subprocess.run([catdog, "maps", "--model", model_path, "--top", str(k),
                            "--out", out_dir, photo], capture_output=True, text=True)
        check(r.returncode == 0, f"{name}: catdog maps --top {k} exits 0 ({r.stderr.strip()})")
        lines = r.stdout.splitlines()
        top_lines = [l for l in lines if not l.startswith(out_dir)]
        map_lines = [l for l in lines if l.startswith(out_dir)]
        check(len(top_lines) == len(means), f"{name} --top {k}: {len(top_lines)} layer lines")
        for line, (ref_name, m) in zip(top_lines, means):
            check_listing(f"{name} --top {k}", k, line, ref_name, m)
        for line, (ref_name, m) in zip(map_lines, means):
            got = re.search(r"\t(\d+) maps of", line)
            want = min(k, m.size) if k else m.size
            check(got is not None and int(got.group(1)) == want,
                  f"{name} --top {k}: {ref_name}'s mosaic holds {want} maps ({line})")
    # Without --out only the listing, and no files.
    r = subprocess.run([catdog, "maps", "--model", model_path, "--top", "3", photo],
                       capture_output=True, text=True)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == len(means),
          f"{name}: --top 3 without --out lists {len(means)} layers")


def main():
    if len(sys.argv) != 2 or not os.environ.get("CATDOG"):
        print("usage: CATDOG=catdog top_torch.py CAM_RUN_BINARY", file=sys.stderr)
        return 2
    binary, catdog = sys.argv[1], os.environ["CATDOG"]
    pycheck.need_shipped()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        run_model(binary, catdog, tmp, "catdog-v1", SHIPPED, ct.load(SHIPPED),
                  os.path.join(DATA, "dog.701.jpg"))
        net = ct.CatdogNet(ct.ARTICLE)
        net.randomize(torch.Generator().manual_seed(5))
        net.eval()
        path = os.path.join(tmp, "article.safetensors")
        net.save(path)
        run_model(binary, catdog, tmp, "article", path, net, os.path.join(DATA, "cat.178.jpg"))
    return pycheck.done("top_torch")


if __name__ == "__main__":
    sys.exit(main())
