#!/usr/bin/env python3
"""PyTorch side of tests/bench/compare (runs where torch is: the Debian 13
root).  Sub-commands, each printing one JSON object on stdout:

  prepare DIR PHOTO [SHIPPED]  write DIR/article.safetensors (the article's
        network, random f32 weights, seed 1), export it and SHIPPED (a
        catdog model file) to ONNX (DIR/article.onnx, DIR/shipped.onnx),
        and write PHOTO squashed to 150x150 as DIR/input.nchw and
        DIR/input.nhwc (float32, scaled as the model says)
  infer MODEL INPUT.nchw THREADS RUNS   batch-1 forward times (ms) and logit
  train THREADS STEPS                   the article network's training step
        at batch 32 (Adam, binary cross-entropy on logits), images/s
"""
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path[:0] = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", d)
                for d in ("lib", os.path.join("..", "convert"))]
import catdog_torch as ct  # noqa: E402


def article_net(seed):
    net = ct.CatdogNet(ct.ARTICLE)
    net.randomize(torch.Generator().manual_seed(seed))
    return net.eval()


def export_onnx(net, path, spec):
    h, w, c = spec["input"]
    dummy = torch.zeros(1, c, h, w)
    with torch.no_grad():
        torch.onnx.export(net, (dummy,), path, input_names=["input"], output_names=["logit"],
                          opset_version=17, dynamo=False)


def prepare(out_dir, photo, shipped):
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    net = article_net(1)
    article = os.path.join(out_dir, "article.safetensors")
    net.save(article, dtype=torch.float32)
    # The file, not the module, is what every engine runs: read it back.
    export_onnx(ct.load(article), os.path.join(out_dir, "article.onnx"), ct.ARTICLE)
    result = {"article": article, "article_onnx": os.path.join(out_dir, "article.onnx")}
    if shipped:
        snet = ct.load(shipped)
        export_onnx(snet, os.path.join(out_dir, "shipped.onnx"), snet.spec)
        result["shipped_onnx"] = os.path.join(out_dir, "shipped.onnx")
        result["shipped_name"] = snet.spec.get("name", "?")
    img = Image.open(photo).convert("RGB").resize((150, 150), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0  # HWC; both models scale by 1/255
    x.astype("<f4").tofile(os.path.join(out_dir, "input.nhwc"))
    np.ascontiguousarray(x.transpose(2, 0, 1)).astype("<f4").tofile(os.path.join(out_dir, "input.nchw"))
    print(json.dumps(result))


def infer(model, inp, threads, runs):
    torch.set_num_threads(threads)
    net = ct.load(model)
    h, w, c = net.spec["input"]
    x = torch.from_numpy(np.fromfile(inp, dtype="<f4").reshape(1, c, h, w))
    times = []
    with torch.inference_mode():
        for _ in range(20):
            logit = net(x)
        for _ in range(runs):
            t = time.perf_counter()
            logit = net(x)
            times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"min_ms": min(times), "median_ms": statistics.median(times),
                      "logit": float(logit[0]), "torch": torch.__version__}))


def train(threads, steps):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net = ct.CatdogNet(ct.ARTICLE)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(32, 3, 150, 150)
    y = (torch.rand(32) > 0.5).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if i >= 2:  # the first steps allocate
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(json.dumps({"images_per_s": 32 / med, "best_images_per_s": 32 / min(times),
                      "loss": float(loss), "finite": math.isfinite(float(loss))}))


def main(argv):
    if len(argv) in (4, 5) and argv[1] == "prepare":
        prepare(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    elif len(argv) == 6 and argv[1] == "infer":
        infer(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif len(argv) == 4 and argv[1] == "train":
        train(int(argv[2]), int(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
