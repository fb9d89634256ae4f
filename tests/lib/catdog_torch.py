"""PyTorch mirror of a gimp-catdog model description.

Builds a torch.nn.Module from the "catdog" JSON spec (weights/README.md),
exports its weights to a catdog safetensors file (PyTorch's (c, h, w)
flatten order, recorded as "flatten": "chw"), and loads such a file back.
Used by the parity, cam and convert tests and the benchmarks.
Shapes follow convert/catdog_convert.py's rules (tests/pycheck.py puts
both folders on sys.path).
Needs python3-torch, python3-safetensors and python3-numpy (all in the
Debian 13 root).
"""
import json
import math

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file, safe_open

import catdog_convert as cc


class CatdogNet(torch.nn.Module):
    """Layers in spec order; forward returns logits (before the sigmoid)
    and, if asked, each conv layer's tap (after the batchnorm/relu run
    directly following it), NCHW."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        h, w, c = spec["input"]
        self.plan = []
        mods = torch.nn.ModuleDict()
        flat = None
        for layer in spec["layers"]:
            t, name = layer["type"], layer["name"]
            key = name.replace(".", "_")
            if t == "conv2d":
                k, s = layer["kernel"], layer.get("stride", 1)
                pt, pb, pl, pr = cc.conv_pads(layer, h, w)
                pads = (pl, pr, pt, pb)  # F.pad's order: last dimension first
                mods[key] = torch.nn.Conv2d(c, layer["filters"], k, s,
                                            bias=layer.get("bias", True))
                self.plan.append((t, name, key, pads))
                h, w = (h + pt + pb - k) // s + 1, (w + pl + pr - k) // s + 1
                c = layer["filters"]
            elif t == "batchnorm":
                mods[key] = torch.nn.BatchNorm2d(c, eps=layer.get("eps", 1e-5)) \
                    if flat is None else torch.nn.BatchNorm1d(c, eps=layer.get("eps", 1e-5))
                self.plan.append((t, name, key, None))
            elif t == "maxpool":
                size, s = layer["size"], layer.get("stride", layer["size"])
                self.plan.append((t, name, key, (size, s)))
                h, w = (h - size) // s + 1, (w - size) // s + 1
            elif t == "flatten":
                flat = c * h * w
                c, h, w = flat, 1, 1
                self.plan.append((t, name, key, None))
            elif t == "gap":
                flat = c
                h = w = 1
                self.plan.append((t, name, key, None))
            elif t == "dense":
                mods[key] = torch.nn.Linear(c, layer["units"], bias=layer.get("bias", True))
                c = layer["units"]
                self.plan.append((t, name, key, None))
            elif t == "dropout":
                mods[key] = torch.nn.Dropout(layer.get("rate", 0.5))
                self.plan.append((t, name, key, None))
            elif t in ("relu", "sigmoid"):
                self.plan.append((t, name, key, None))
            else:
                raise ValueError(f"unknown layer type {t}")
        self.mods = mods

    def forward(self, x, taps=None):
        tap_open = False
        for t, name, key, arg in self.plan:
            if t == "conv2d":
                if any(arg):
                    x = F.pad(x, arg)
                x = self.mods[key](x)
            elif t in ("batchnorm", "dense", "dropout"):
                x = self.mods[key](x)
            elif t == "relu":
                x = F.relu(x)
            elif t == "maxpool":
                x = F.max_pool2d(x, arg[0], arg[1])
            elif t == "flatten":
                x = torch.flatten(x, 1)
            elif t == "gap":
                x = x.mean(dim=(2, 3))
            elif t == "sigmoid":
                continue  # logits are returned
            if t == "conv2d":
                tap_open = True
                if taps is not None:
                    taps.append(x)
            elif tap_open and t in ("relu", "batchnorm"):
                if taps is not None:
                    taps[-1] = x
            else:
                tap_open = False
        return x.reshape(-1)

    def state_for_file(self):
        """Tensors named as our files name them ("<layer>.weight", ...)."""
        out = {}
        for t, name, key, _ in self.plan:
            if key not in self.mods or t == "dropout":
                continue
            m = self.mods[key]
            out[f"{name}.weight"] = m.weight.detach()
            if getattr(m, "bias", None) is not None:
                out[f"{name}.bias"] = m.bias.detach()
            if t == "batchnorm":
                out[f"{name}.running_mean"] = m.running_mean.detach()
                out[f"{name}.running_var"] = m.running_var.detach()
        return out

    def save(self, path, dtype=torch.float32, extra=None):
        meta = dict(self.spec)
        meta.setdefault("schema", 1)
        meta["flatten"] = "chw"
        if extra:
            meta.update(extra)
        tensors = {k: v.to(dtype).contiguous() for k, v in self.state_for_file().items()}
        save_file(tensors, path, metadata={"format": "catdog", "catdog": json.dumps(meta)})

    def randomize(self, generator):
        """Random weights with non-trivial batch-norm statistics."""
        with torch.no_grad():
            for t, _, key, _ in self.plan:
                if key not in self.mods or t == "dropout":
                    continue
                m = self.mods[key]
                if t == "batchnorm":
                    n = m.num_features
                    m.weight.copy_(1 + 0.5 * (torch.rand(n, generator=generator) * 2 - 1))
                    m.bias.copy_(0.2 * (torch.rand(n, generator=generator) * 2 - 1))
                    m.running_mean.copy_(0.3 * (torch.rand(n, generator=generator) * 2 - 1))
                    m.running_var.copy_(0.5 + 0.4 * torch.rand(n, generator=generator))
                else:
                    fan_in = m.weight[0].numel()
                    lim = math.sqrt(6.0 / fan_in)
                    m.weight.copy_((torch.rand(m.weight.shape, generator=generator) * 2 - 1) * lim)
                    if m.bias is not None:
                        m.bias.copy_(0.1 * (torch.rand(m.bias.shape, generator=generator) * 2 - 1))


def load(path):
    """A CatdogNet with the weights of a catdog safetensors file."""
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["catdog"])
    net = CatdogNet(meta)
    tensors = {k: v.float() for k, v in load_file(path).items()}
    order = meta.get("flatten", "hwc")
    flatten_maps = cc.walk_shapes(meta["input"], meta["layers"])[1]
    with torch.no_grad():
        prev_flat = None
        for t, name, key, _ in net.plan:
            if t == "flatten":
                prev_flat = name
                continue
            if key not in net.mods or t == "dropout":
                continue
            m = net.mods[key]
            wt = tensors[f"{name}.weight"]
            if t == "dense" and prev_flat is not None and order == "hwc":
                # File input index is (h, w, c); PyTorch flattens (c, h, w).
                h, w, c = flatten_maps[prev_flat]
                wt = wt.reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(wt.shape[0], -1)
            m.weight.copy_(wt)
            if f"{name}.bias" in tensors:
                m.bias.copy_(tensors[f"{name}.bias"])
            if t == "batchnorm":
                m.running_mean.copy_(tensors[f"{name}.running_mean"])
                m.running_var.copy_(tensors[f"{name}.running_var"])
            prev_flat = None
    net.eval()
    return net


# The article's network, as core/model.c's built-in "article".
ARTICLE = cc.BUILTIN_ARCHS["article"]
