#!/usr/bin/env python3
"""PyTorch side of tests/bench/compare (runs where torch is: the Debian 13
root).  Sub-commands, each printing one JSON object on stdout:

  prepare DIR PHOTO [SHIPPED]  write DIR/article.safetensors (the article's
        network, random f32 weights, seed 1), export it and SHIPPED (a
        catdog model file) to ONNX (DIR/article.onnx, DIR/shipped.onnx),
        and write PHOTO squashed to each network's input size as
        DIR/NET.nchw and DIR/NET.nhwc, NET article or shipped (float32,
        scaled as the model says)
  infer MODEL INPUT.nchw THREADS RUNS   batch-1 forward times (ms) and logit
  train THREADS STEPS [ARCH [fp32|bf16]]  a training step at batch 32 of the
        built-in architecture ARCH (default article; catdog-v2 is the shipped
        one): forward, binary cross-entropy on the logits, backward and an
        Adam step on one fixed random batch (no augmentation, no data
        loading); bf16 runs forward and loss under
        torch.autocast('cpu', dtype=torch.bfloat16).  Median images/s over
        STEPS steps after 2 warm-up steps
  onednn        one convolution forward and backward in fp32, then under
        bf16 autocast; run with ONEDNN_VERBOSE=1 in the environment, oneDNN
        names the implementation of each on stdout (compare reads them)
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
    sizes = {"article": ct.ARTICLE["input"]}
    if shipped:
        sizes["shipped"] = snet.spec["input"]
    for net, (h, w, _c) in sizes.items():
        img = Image.open(photo).convert("RGB").resize((w, h), Image.BILINEAR)
        x = np.asarray(img, dtype=np.float32) / 255.0  # HWC; both models scale by 1/255
        x.astype("<f4").tofile(os.path.join(out_dir, f"{net}.nhwc"))
        np.ascontiguousarray(x.transpose(2, 0, 1)).astype("<f4").tofile(
            os.path.join(out_dir, f"{net}.nchw"))
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


def plain_net(spec):
    """The spec as PyTorch users write such a network: nn.Sequential, the
    convolutions padding themselves (CatdogNet pads with F.pad, an extra
    copy that a hand-written network would not make).  None when a
    convolution's padding is not symmetric."""
    cc = ct.cc
    h, w, c = spec["input"]
    mods = []
    flat = False
    for layer in spec["layers"]:
        t = layer["type"]
        if t == "conv2d":
            k, s = layer["kernel"], layer.get("stride", 1)
            pt, pb, pl, pr = cc.conv_pads(layer, h, w)
            if pt != pb or pl != pr:
                return None
            mods.append(torch.nn.Conv2d(c, layer["filters"], k, s, padding=(pt, pl),
                                        bias=layer.get("bias", True)))
            h, w = (h + pt + pb - k) // s + 1, (w + pl + pr - k) // s + 1
            c = layer["filters"]
        elif t == "batchnorm":
            bn = torch.nn.BatchNorm1d if flat else torch.nn.BatchNorm2d
            mods.append(bn(c, eps=layer.get("eps", 1e-5)))
        elif t == "relu":
            mods.append(torch.nn.ReLU(inplace=True))
        elif t == "maxpool":
            size, s = layer["size"], layer.get("stride", layer["size"])
            mods.append(torch.nn.MaxPool2d(size, s))
            h, w = (h - size) // s + 1, (w - size) // s + 1
        elif t == "gap":
            mods += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()]
            h = w = 1
            flat = True
        elif t == "flatten":
            mods.append(torch.nn.Flatten())
            c, h, w = c * h * w, 1, 1
            flat = True
        elif t == "dense":
            mods.append(torch.nn.Linear(c, layer["units"], bias=layer.get("bias", True)))
            c = layer["units"]
        elif t == "dropout":
            mods.append(torch.nn.Dropout(layer.get("rate", 0.5)))
        elif t != "sigmoid":
            return None
    return torch.nn.Sequential(*mods)


def train(threads, steps, arch="article", precision="fp32"):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    spec = ct.cc.BUILTIN_ARCHS[arch]
    # The article's network as the earlier measurements ran it (CatdogNet);
    # other architectures as written by hand.
    net = (plain_net(spec) if arch != "article" else None) or ct.CatdogNet(spec)
    net.train()
    # As catdog train: AdamW, weight decay 0.01 on conv and dense weights.
    decay = [p for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
             for n, p in m.named_parameters() if n == "weight"]
    ids = {id(p) for p in decay}
    rest = [p for p in net.parameters() if id(p) not in ids]
    opt = (torch.optim.Adam(net.parameters(), lr=1e-3) if arch == "article" else
           torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": rest, "weight_decay": 0.0}], lr=1e-3))
    h, w, c = spec["input"]
    x = torch.rand(32, c, h, w)
    y = (torch.rand(32) > 0.5).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(net(x).reshape(-1).float(), y)
        else:
            loss = loss_fn(net(x).reshape(-1), y)
        loss.backward()
        opt.step()
        if i >= 2:  # the first steps allocate
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(json.dumps({"images_per_s": 32 / med, "best_images_per_s": 32 / min(times),
                      "loss": float(loss), "finite": math.isfinite(float(loss)),
                      "arch": arch, "precision": precision, "threads": threads,
                      "steps": steps, "torch": torch.__version__}))


def onednn():
    torch.set_num_threads(1)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    x = torch.rand(4, 64, 18, 18, requires_grad=True)
    conv(x).sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
    print(json.dumps({"autocast_dtype": str(y.dtype), "mkldnn": torch.backends.mkldnn.is_available(),
                      "torch": torch.__version__}), flush=True)


def main(argv):
    if len(argv) in (4, 5) and argv[1] == "prepare":
        prepare(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    elif len(argv) == 6 and argv[1] == "infer":
        infer(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif 4 <= len(argv) <= 6 and argv[1] == "train":
        train(int(argv[2]), int(argv[3]), *argv[4:])
    elif len(argv) == 2 and argv[1] == "onednn":
        onednn()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
