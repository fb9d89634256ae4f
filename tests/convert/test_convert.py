#!/usr/bin/env python3
"""convert/convert-keras and convert/convert-torch (suite 'convert').

usage: test_convert.py PARITY_RUN_BINARY   ($CATDOG: the catdog binary)

Builds Keras and PyTorch files of the article's kind with random weights,
converts them, runs the result through our C forward pass (parity_run)
and compares the logit and every conv tap with a PyTorch computation on
the original weights: max abs error <= 1e-4. Then the refusals: unknown
layers, channels_first, non-square kernels, dilation, activations,
shapes that disagree, an existing output file.

Keras is not installed; the files are written with h5py in the layouts
Keras itself writes (checked against keras/src/legacy/saving/
legacy_h5_format.py and keras/src/saving/saving_lib.py of Keras 3, and
tf.keras 2.x's hdf5_format.py):

  Keras 2 model.save("m.h5") (and Keras 3's legacy .h5):
    /  attrs keras_version, backend, model_config (JSON bytes),
       training_config
    /model_weights  attrs layer_names (byte strings, model.layers order),
                    backend, keras_version
    /model_weights/<layer>  (created in sorted name order) attr
       weight_names, e.g. [b"conv2d/kernel:0", b"conv2d/bias:0"]
       (Keras 3: b"sequential/conv2d/kernel"); each a dataset path
       inside the group; [] for layers without weights
    /model_weights/top_level_model_weights  weight_names []
    /optimizer_weights  (ignored)
  Keras 2 model.save_weights("w.h5"): the model_weights part at the root.
  Keras 3 model.save("m.keras"): a zip of metadata.json, config.json
    (serialize_keras_object of the model) and model.weights.h5, where
    /vars is the model's own (empty) and /layers/<class in snake case>
    [_<n>]/vars/<i> the i-th variable of the n-th layer of that class in
    model.layers (the InputLayer is not one of them), whatever the layer's
    name; /optimizer/vars/<i> is ignored.  model.save_weights(
    "m.weights.h5") writes the same HDF5 file on its own.
Conv kernels are [kh, kw, in, out], dense kernels [in, out], batch norm
gamma, beta, moving_mean, moving_variance; Flatten runs on NHWC.

Exits 77 (skip) when torch, numpy or h5py is missing.
"""
import ast
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycheck  # noqa: E402
from pycheck import CONVERT, ROOT, SHIPPED, check  # noqa: E402

h5py, np, torch, nn, F, cc, ct = pycheck.need(
    "h5py", "numpy", "torch", "torch.nn", "torch.nn.functional", "catdog_convert", "catdog_torch")

TOL = 1e-4

# ----------------------------------------------------------------------
# Running the converters and our forward pass


def convert(tool, args, tmp):
    env = dict(os.environ)
    if os.environ.get("CATDOG"):
        env["CATDOG_BIN"] = os.environ["CATDOG"]
    return subprocess.run([sys.executable, os.path.join(CONVERT, tool)] + args, cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return header, json.loads(header["__metadata__"]["catdog"])


def ours(binary, model, x_nhwc, tmp):
    """Our logits and taps [(name, NHWC array)] for a batch of inputs."""
    inp, out = os.path.join(tmp, "x.in"), os.path.join(tmp, "x.out")
    x_nhwc.astype("<f4").tofile(inp)
    r = subprocess.run([binary, model, inp, str(len(x_nhwc)), out, "1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"parity_run: {r.stderr.strip()}")
    data = np.fromfile(out, dtype="<f4")
    n = len(x_nhwc)
    logits, off, taps = data[:n], n, []
    for line in r.stdout.splitlines():
        if line.startswith("tap "):
            _, name, h, w, c = line.split()
            size = n * int(h) * int(w) * int(c)
            taps.append((name, data[off:off + size].reshape(n, int(h), int(w), int(c))))
            off += size
    return logits, taps


def compare(label, binary, model, x_nhwc, ref_logits, ref_taps, tmp):
    """Our forward pass on `model` against reference logits and taps."""
    try:
        logits, taps = ours(binary, model, x_nhwc, tmp)
    except RuntimeError as e:
        check(False, f"{label}: {e}")
        return
    err = float(np.max(np.abs(logits - ref_logits)))
    check(err <= TOL, f"{label}: logit max abs error {err:.2g} (ours {logits}, "
          f"reference {ref_logits})")
    if not check(len(taps) == len(ref_taps),
                 f"{label}: {len(taps)} conv taps (reference: {len(ref_taps)})"):
        return
    for (name, got), ref in zip(taps, ref_taps):
        if not check(got.shape == ref.shape,
                     f"{label}: tap {name} shape {got.shape} vs {ref.shape}"):
            continue
        err = float(np.max(np.abs(got - ref)))
        check(err <= TOL, f"{label}: tap {name} max abs error {err:.2g}")


def converted_ok(label, r, path):
    ok = check(r.returncode == 0 and os.path.exists(path),
               f"{label}: converted (exit {r.returncode})")
    if not ok:
        print("  stderr: " + r.stderr.strip().replace("\n", "\n  stderr: "))
    elif os.environ.get("CATDOG"):
        check("parameters" in r.stdout and "layer" in r.stdout,
              f"{label}: the converter ran catdog info on the result")
    return ok


def refused(label, r, path, *needles):
    err = r.stderr.strip()
    check(r.returncode == 1, f"{label}: refused with exit 1 (got {r.returncode})")
    check("Traceback" not in err and err.count("\n") < 40 and err,
          f"{label}: one message, no traceback: {err.splitlines()[0] if err else '(none)'}")
    for needle in needles:
        check(needle in err, f"{label}: message names {needle!r}")
    check(not os.path.exists(path), f"{label}: no file written")


# ----------------------------------------------------------------------
# Keras models, as configs and weights in Keras' own layouts


class KerasNet:
    """A Sequential model: Keras layer configs plus weights in Keras
    layouts, with shapes followed so that random weights fit."""

    def __init__(self, input_hwc, seed, names=None):
        self.input = tuple(input_hwc)
        self.shape = tuple(input_hwc)  # (h, w, c) or (features,)
        self.layers = []  # (class, name, config, [(short name, array)])
        self.rng = np.random.default_rng(seed)
        self.counts = {}
        self.names = names or {}

    def _name(self, cls):
        snake = cc_snake(cls)
        n = self.counts.get(snake, 0)
        self.counts[snake] = n + 1
        default = snake + (f"_{n}" if n else "")
        return self.names.get(default, default)

    def _uniform(self, shape, fan_in):
        lim = np.sqrt(6.0 / fan_in)
        return self.rng.uniform(-lim, lim, size=shape).astype(np.float32)

    def add(self, cls, cfg, weights=()):
        name = self._name(cls)
        self.layers.append((cls, name, dict(cfg, name=name), list(weights)))
        return self

    def conv(self, filters, k, strides=1, padding="valid", activation="relu", use_bias=True):
        h, w, c = self.shape
        if padding == "same":
            oh, ow = -(-h // strides), -(-w // strides)
        else:
            oh, ow = (h - k) // strides + 1, (w - k) // strides + 1
        weights = [("kernel", self._uniform((k, k, c, filters), k * k * c))]
        if use_bias:
            weights.append(("bias", self.rng.uniform(-0.1, 0.1, filters).astype(np.float32)))
        self.shape = (oh, ow, filters)
        return self.add("Conv2D", {
            "filters": filters, "kernel_size": [k, k], "strides": [strides, strides],
            "padding": padding, "data_format": "channels_last", "dilation_rate": [1, 1],
            "groups": 1, "activation": activation, "use_bias": use_bias,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
        }, weights)

    def pool(self, size=2, padding="valid"):
        h, w, c = self.shape
        if padding == "same":
            self.shape = (-(-h // size), -(-w // size), c)
        else:
            self.shape = ((h - size) // size + 1, (w - size) // size + 1, c)
        return self.add("MaxPooling2D", {"pool_size": [size, size], "padding": padding,
                                         "strides": [size, size], "data_format": "channels_last"})

    def flatten(self):
        self.shape = (int(np.prod(self.shape)),)
        return self.add("Flatten", {"data_format": "channels_last"})

    def gap(self):
        self.shape = (self.shape[-1],)
        return self.add("GlobalAveragePooling2D", {"data_format": "channels_last",
                                                   "keepdims": False})

    def dense(self, units, activation="linear", use_bias=True):
        n = self.shape[0]
        weights = [("kernel", self._uniform((n, units), n))]
        if use_bias:
            weights.append(("bias", self.rng.uniform(-0.1, 0.1, units).astype(np.float32)))
        self.shape = (units,)
        return self.add("Dense", {"units": units, "activation": activation, "use_bias": use_bias,
                                  "kernel_initializer": {"class_name": "GlorotUniform",
                                                         "config": {"seed": None}}}, weights)

    def dropout(self, rate):
        return self.add("Dropout", {"rate": rate, "noise_shape": None, "seed": None})

    def bn(self, epsilon=1e-3, center=True, scale=True):
        c = self.shape[-1]
        r = self.rng
        weights = []
        if scale:
            weights.append(("gamma", (1 + 0.5 * r.uniform(-1, 1, c)).astype(np.float32)))
        if center:
            weights.append(("beta", (0.2 * r.uniform(-1, 1, c)).astype(np.float32)))
        weights.append(("moving_mean", (0.3 * r.uniform(-1, 1, c)).astype(np.float32)))
        weights.append(("moving_variance", (0.5 + 0.4 * r.uniform(0, 1, c)).astype(np.float32)))
        return self.add("BatchNormalization", {
            "axis": -1, "momentum": 0.99, "epsilon": epsilon, "center": center, "scale": scale,
            "beta_initializer": {"class_name": "Zeros", "config": {}}}, weights)

    def act(self, activation):
        return self.add("Activation", {"activation": activation})

    def relu(self):
        return self.add("ReLU", {"max_value": None, "negative_slope": 0.0, "threshold": 0.0})

    def rescaling(self, scale, offset=0.0):
        return self.add("Rescaling", {"scale": scale, "offset": offset})


def cc_snake(cls):
    """Keras' own auto-naming (Conv2D -> conv2d, MaxPooling2D ->
    max_pooling2d), written out, not taken from the converter."""
    table = {"Conv2D": "conv2d", "MaxPooling2D": "max_pooling2d", "Flatten": "flatten",
             "Dense": "dense", "Dropout": "dropout", "BatchNormalization": "batch_normalization",
             "Activation": "activation", "ReLU": "re_lu", "Rescaling": "rescaling",
             "GlobalAveragePooling2D": "global_average_pooling2d", "LSTM": "lstm",
             "Conv2DTranspose": "conv2d_transpose"}
    return table[cls]


def keras2_config(net, input_layer=True):
    """model_config of tf.keras 2.x (input_layer=False: the older style, the
    input shape on the first layer)."""
    layers = []
    shape = [None, *net.input]
    if input_layer:
        layers.append({"class_name": "InputLayer", "config": {
            "batch_input_shape": shape, "dtype": "float32", "sparse": False, "ragged": False,
            "name": "conv2d_input"}})
    for i, (cls, _, cfg, _) in enumerate(net.layers):
        cfg = dict(cfg, trainable=True, dtype="float32")
        if i == 0 and not input_layer:
            cfg["batch_input_shape"] = shape
        layers.append({"class_name": cls, "config": cfg})
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def keras3_config(net):
    """config.json of a Keras 3 .keras archive."""
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
              "registered_name": None}
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "config": {
        "batch_shape": [None, *net.input], "dtype": "float32", "sparse": False,
        "name": "input_layer"}, "registered_name": None}]
    for cls, _, cfg, _ in net.layers:
        layers.append({"module": "keras.layers", "class_name": cls,
                       "config": dict(cfg, trainable=True, dtype=policy),
                       "registered_name": None})
    return {"module": "keras", "class_name": "Sequential", "config": {
        "name": "sequential", "trainable": True, "dtype": policy, "layers": layers,
        "build_input_shape": [None, *net.input]}, "registered_name": None,
        "build_config": {"input_shape": [None, *net.input]},
        "compile_config": {"optimizer": "adam", "loss": "binary_crossentropy"}}


def write_legacy_weights(g, net, keras_version):
    """The model_weights part of Keras' HDF5 format into group g."""
    g.attrs["layer_names"] = [name.encode() for _, name, _, _ in net.layers]
    g.attrs["backend"] = b"tensorflow"
    g.attrs["keras_version"] = keras_version.encode()
    for _, name, _, weights in sorted(net.layers, key=lambda layer: layer[1]):
        lg = g.create_group(name)
        if keras_version.startswith("3."):
            paths = [f"sequential/{name}/{short}" for short, _ in weights]
        else:
            paths = [f"{name}/{short}:0" for short, _ in weights]
        lg.attrs["weight_names"] = [p.encode() for p in paths]
        for p, (_, value) in zip(paths, weights):
            lg.create_dataset(p, value.shape, dtype=value.dtype)[...] = value
    g.create_group("top_level_model_weights").attrs["weight_names"] = []


def write_keras_h5(path, net, keras_version="2.15.0", input_layer=True):
    config = keras2_config(net, input_layer)
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = keras_version.encode()
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps({"loss": "binary_crossentropy"}).encode()
        write_legacy_weights(f.create_group("model_weights"), net, keras_version)
        opt = f.create_group("optimizer_weights")
        opt.attrs["weight_names"] = [b"Adam/iter:0"]
        opt.create_dataset("Adam/iter:0", data=np.int64(12))
    return config


def write_keras2_weights(path, net):
    with h5py.File(path, "w") as f:
        write_legacy_weights(f, net, "2.15.0")


def keras3_weights_bytes(net):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        counts = {}
        for cls, _, _, weights in net.layers:
            snake = cc_snake(cls)
            n = counts.get(snake, 0)
            counts[snake] = n + 1
            vars_group = f.create_group(f"layers/{snake}" + (f"_{n}" if n else "")).create_group(
                "vars")
            for i, (_, value) in enumerate(weights):
                vars_group[str(i)] = value
        opt = f.create_group("optimizer").create_group("vars")
        opt["0"] = np.int64(12)
        opt["1"] = np.float32(1e-3)
    return buf.getvalue()


def write_keras3_archive(path, net):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0",
                                                 "date_saved": "2026-11-25@20:00:00"}))
        zf.writestr("config.json", json.dumps(keras3_config(net)))
        zf.writestr("model.weights.h5", keras3_weights_bytes(net))


def keras_reference(net, x, rounded=None, skip_rescaling=True):
    """Logit (before a final sigmoid; z1 - z0 for a 2-way softmax) and conv
    taps of the Keras model, computed with PyTorch in float64 on NHWC
    tensors straight from the Keras layouts."""
    t = torch.from_numpy(x.astype(np.float64))
    taps, tap_open = [], False

    def w(value):
        v = value if rounded is None or value.ndim < 2 else \
            torch.from_numpy(value).to(rounded).float().numpy()
        return torch.from_numpy(v.astype(np.float64))

    def activate(t, a):
        if a == "relu":
            return torch.relu(t)
        if a == "softmax":
            return t[:, 1:2] - t[:, 0:1]  # the logit of class 1
        return t  # linear; a final sigmoid is left out (logit)

    for cls, _, cfg, weights in net.layers:
        p = dict(weights)
        tapped = False
        if cls == "Rescaling":
            if not skip_rescaling:
                t = t * cfg["scale"] + cfg["offset"]
        elif cls == "Conv2D":
            kern = w(p["kernel"])
            k, s = kern.shape[0], cfg["strides"][0]
            if cfg["padding"] == "same":
                n, h, wd, c = t.shape
                ph = max((-(-h // s) - 1) * s + k - h, 0)
                pw = max((-(-wd // s) - 1) * s + k - wd, 0)
                t = F.pad(t, (0, 0, pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            n, h, wd, c = t.shape
            oh, ow = (h - k) // s + 1, (wd - k) // s + 1
            out = torch.zeros(n, oh, ow, kern.shape[3], dtype=torch.float64)
            for a in range(k):
                for b in range(k):
                    out += t[:, a:a + s * (oh - 1) + 1:s, b:b + s * (ow - 1) + 1:s, :] @ kern[a, b]
            if "bias" in p:
                out = out + w(p["bias"])
            t = activate(out, cfg["activation"])
            tapped = tap_open = True
            taps.append(t)
        elif cls == "MaxPooling2D":
            t = F.max_pool2d(t.permute(0, 3, 1, 2), cfg["pool_size"][0]).permute(0, 2, 3, 1)
        elif cls == "Flatten":
            t = t.reshape(t.shape[0], -1)
        elif cls == "GlobalAveragePooling2D":
            t = t.mean(dim=(1, 2))
        elif cls == "Dense":
            t = t @ w(p["kernel"])
            if "bias" in p:
                t = t + w(p["bias"])
            t = activate(t, cfg["activation"])
        elif cls == "BatchNormalization":
            t = (t - w(p["moving_mean"])) / torch.sqrt(w(p["moving_variance"]) + cfg["epsilon"])
            if "gamma" in p:
                t = t * w(p["gamma"])
            if "beta" in p:
                t = t + w(p["beta"])
            tapped = tap_open
            if tapped:
                taps[-1] = t
        elif cls in ("Activation", "ReLU"):
            t = activate(t, cfg.get("activation", "relu"))
            tapped = tap_open and cfg.get("activation", "relu") == "relu"
            if tapped:
                taps[-1] = t
        tap_open = tapped
    return t.reshape(-1).numpy().astype(np.float32), [v.numpy().astype(np.float32) for v in taps]


# ----------------------------------------------------------------------
# The Keras cases


def article_keras():
    """The article's network, as the book writes it in Keras."""
    net = KerasNet((150, 150, 3), seed=1)
    net.conv(32, 3).pool().conv(64, 3).pool().conv(128, 3).pool()
    return net.flatten().dense(512, "relu").dropout(0.5).dense(1, "sigmoid")


def bn_gap_keras(names=None):
    """Batch norm (with and without beta), 'same' and stride 2, separate
    Activation and ReLU layers, global average pooling, a 48x40 input."""
    net = KerasNet((48, 40, 3), seed=2, names=names)
    net.conv(16, 3, strides=2, padding="same", activation="linear", use_bias=False).bn()
    net.act("relu").conv(24, 3, padding="same", activation="linear", use_bias=False)
    net.bn(epsilon=1e-5, center=False).relu().pool()
    net.conv(32, 5, strides=2, padding="valid", activation="relu").bn()
    return net.gap().dropout(0.3).dense(1).act("sigmoid")


def rescale_softmax_keras():
    """Rescaling first, 'same' pooling that pads nothing, flatten of a
    multi-channel map, a 2-way softmax head."""
    net = KerasNet((32, 24, 3), seed=3)
    net.rescaling(1 / 127.5, -1.0).conv(8, 3, padding="same").pool(padding="same")
    net.conv(12, 3).pool()
    return net.flatten().dense(16, "relu").dense(2, "softmax")


def test_keras(binary, tmp):
    gen = np.random.default_rng(7)
    catdog = bool(os.environ.get("CATDOG"))

    # 1. The article, Keras 2 model.save("...h5"), old config style.
    net = article_keras()
    src, out = os.path.join(tmp, "article.h5"), os.path.join(tmp, "article-k.safetensors")
    write_keras_h5(src, net, input_layer=False)
    r = convert("convert-keras", [src, out], tmp)
    x = gen.random((2, 150, 150, 3), dtype=np.float32)
    if converted_ok("keras2 h5 article", r, out):
        _, desc = metadata(out)
        check(desc["input"] == [150, 150, 3] and desc["labels"] == ["cat", "dog"]
              and abs(desc["preprocess"]["scale"] - 1 / 255) < 1e-12 and desc["flatten"] == "hwc"
              and desc["name"] == "article" and desc["source"]["converter"] == "convert-keras",
              f"keras2 h5 article: metadata {desc['name']}, {desc['input']}, "
              f"{desc['preprocess']}, {desc['flatten']}")
        check([L["type"] for L in desc["layers"]] == [L["type"] for L in ct.ARTICLE["layers"]],
              "keras2 h5 article: our layers are the article's")
        umask = os.umask(0)
        os.umask(umask)
        mode = os.stat(out).st_mode & 0o777
        check(mode == 0o666 & ~umask, f"keras2 h5 article: file mode {mode:o} follows the umask")
        compare("keras2 h5 article", binary, out, x, *keras_reference(net, x), tmp)
    os.unlink(src)

    # 2. Batch norm + gap in a Keras 3 .keras archive; layer names that are
    # not the class-based group names, to show those are not needed.
    custom = {"conv2d": "stem", "conv2d_1": "mid", "batch_normalization_2": "last_bn",
              "dense": "head"}
    net = bn_gap_keras(custom)
    src, out = os.path.join(tmp, "bn.keras"), os.path.join(tmp, "bn-k.safetensors")
    write_keras3_archive(src, net)
    r = convert("convert-keras", ["--name", "bn gap", "--labels", "dog,cat", src, out], tmp)
    x = gen.random((3, 48, 40, 3), dtype=np.float32)
    if converted_ok("keras3 archive bn+gap", r, out):
        _, desc = metadata(out)
        check(desc["name"] == "bn gap" and desc["labels"] == ["dog", "cat"]
              and desc["input"] == [48, 40, 3] and desc["source"]["keras_version"] == "3.8.0",
              f"keras3 archive bn+gap: metadata {desc['name']}, {desc['labels']}, {desc['input']}")
        eps = [L["eps"] for L in desc["layers"] if L["type"] == "batchnorm"]
        check(eps == [1e-3, 1e-5, 1e-3], f"keras3 archive bn+gap: batch-norm eps {eps}")
        compare("keras3 archive bn+gap", binary, out, x, *keras_reference(net, x), tmp)

    # 3. The same weights as a Keras 3 .weights.h5 with the architecture as
    # Keras' model.to_json(), stored as f16.
    src, arch = os.path.join(tmp, "bn.weights.h5"), os.path.join(tmp, "bn.json")
    out = os.path.join(tmp, "bn-f16.safetensors")
    with open(src, "wb") as f:
        f.write(keras3_weights_bytes(net))
    with open(arch, "w") as f:
        json.dump(keras3_config(net), f)
    r = convert("convert-keras", ["--arch", arch, "--dtype", "f16", src, out], tmp)
    if converted_ok("keras3 weights.h5 + to_json, f16", r, out):
        header, desc = metadata(out)
        dtypes = sorted({v["dtype"] for k, v in header.items() if k.endswith(".weight")
                         and len(v["shape"]) > 1})
        check(dtypes == ["F16"] and desc["name"] == "bn",
              f"keras3 weights.h5 f16: weight dtypes {dtypes}, name {desc['name']}")
        compare("keras3 weights.h5 + to_json, f16", binary, out, x,
                *keras_reference(net, x, rounded=torch.float16), tmp)

    # 4. Rescaling + 2-way softmax, Keras 3 writing the legacy .h5 format.
    net = rescale_softmax_keras()
    src, out = os.path.join(tmp, "soft.h5"), os.path.join(tmp, "soft-k.safetensors")
    write_keras_h5(src, net, keras_version="3.8.0")
    r = convert("convert-keras", [src, out], tmp)
    x = gen.uniform(-1, 1, (2, 32, 24, 3)).astype(np.float32)
    if converted_ok("keras3 legacy h5 rescaling+softmax", r, out):
        _, desc = metadata(out)
        pre = desc["preprocess"]
        check(abs(pre["scale"] - 1 / 127.5) < 1e-12 and pre["mean"] == [1.0] * 3
              and pre["std"] == [1.0] * 3,
              f"keras3 legacy h5: Rescaling became the preprocessing {pre}")
        check(desc["layers"][-2]["units"] == 1 and desc["layers"][-1]["type"] == "sigmoid",
              "keras3 legacy h5: the softmax head became one logit and a sigmoid")
        compare("keras3 legacy h5 rescaling+softmax", binary, out, x,
                *keras_reference(net, x), tmp)
        if catdog:
            # Preprocessing end to end: a flat gray photo, classified by
            # catdog, against the network on (128 * scale + offset).
            check_classify(net, out, tmp)
    r = convert("convert-keras", ["--scale", "1/255", src, os.path.join(tmp, "x.safetensors")],
                tmp)
    refused("--scale with a Rescaling layer", r, os.path.join(tmp, "x.safetensors"),
            "Rescaling")

    # 5. Keras 2 save_weights (weights only) + a catdog description.
    net = bn_gap_keras()
    src, spec = os.path.join(tmp, "w.h5"), os.path.join(tmp, "spec.json")
    out = os.path.join(tmp, "w.safetensors")
    write_keras2_weights(src, net)
    with open(spec, "w") as f:
        json.dump({"name": "from-spec", "input": [48, 40, 3], "labels": ["cat", "dog"], "layers": [
            {"type": "conv2d", "name": "c1", "filters": 16, "kernel": 3, "stride": 2,
             "padding": "same", "bias": False},
            {"type": "batchnorm", "name": "bn1", "eps": 1e-3}, {"type": "relu", "name": "r1"},
            {"type": "conv2d", "name": "c2", "filters": 24, "kernel": 3, "padding": "same",
             "bias": False},
            {"type": "batchnorm", "name": "bn2", "eps": 1e-5}, {"type": "relu", "name": "r2"},
            {"type": "maxpool", "name": "p2", "size": 2},
            {"type": "conv2d", "name": "c3", "filters": 32, "kernel": 5, "stride": 2},
            {"type": "relu", "name": "r3"},
            {"type": "batchnorm", "name": "bn3", "eps": 1e-3},
            {"type": "gap", "name": "gap"}, {"type": "dense", "name": "fc", "units": 1},
            {"type": "sigmoid", "name": "prob"}]}, f)
    r = convert("convert-keras", ["--arch", spec, src, out], tmp)
    x = gen.random((2, 48, 40, 3), dtype=np.float32)
    if converted_ok("keras2 weights-only h5 + catdog description", r, out):
        compare("keras2 weights-only h5 + catdog description", binary, out, x,
                *keras_reference(net, x), tmp)
    # The Keras 3 .weights.h5 of case 3 holds the same weights (same seed),
    # but its arrays have no names: a batch norm without beta (3 arrays)
    # cannot be placed without the Keras config.
    out = os.path.join(tmp, "w3.safetensors")
    r = convert("convert-keras", ["--arch", spec, os.path.join(tmp, "bn.weights.h5"), out], tmp)
    refused("keras3 weights.h5 + catdog description, ambiguous batch norm", r, out,
            "batch_normalization_1", "<- differs", "center=False", "model.to_json()")

    # Keras 3 .weights.h5 + a catdog description: the n-th conv2d of the
    # description takes layers/conv2d_<n>, whatever the Keras layer names.
    net = KerasNet((20, 18, 3), seed=5)
    net.conv(6, 3, activation="linear").bn().act("relu").pool().conv(8, 3, padding="same")
    net.flatten().dense(8, "relu").dense(1, "sigmoid")
    src, out = os.path.join(tmp, "small.weights.h5"), os.path.join(tmp, "small.safetensors")
    with open(src, "wb") as f:
        f.write(keras3_weights_bytes(net))
    with open(spec, "w") as f:
        json.dump({"input": [20, 18, 3], "layers": [
            {"type": "conv2d", "name": "c1", "filters": 6, "kernel": 3},
            {"type": "batchnorm", "name": "bn1", "eps": 1e-3}, {"type": "relu", "name": "r1"},
            {"type": "maxpool", "name": "p1", "size": 2},
            {"type": "conv2d", "name": "c2", "filters": 8, "kernel": 3, "padding": "same"},
            {"type": "relu", "name": "r2"}, {"type": "flatten", "name": "flat"},
            {"type": "dense", "name": "fc1", "units": 8}, {"type": "relu", "name": "r3"},
            {"type": "dense", "name": "fc2", "units": 1}, {"type": "sigmoid", "name": "prob"}]},
            f)
    r = convert("convert-keras", ["--arch", spec, src, out], tmp)
    x = gen.random((2, 20, 18, 3), dtype=np.float32)
    if converted_ok("keras3 weights.h5 + catdog description", r, out):
        check(metadata(out)[1]["name"] == "small", "keras3 weights.h5: named after the file")
        compare("keras3 weights.h5 + catdog description", binary, out, x,
                *keras_reference(net, x), tmp)
    r = convert("convert-keras", ["--arch", "article", src, os.path.join(tmp, "x.safetensors")],
                tmp)
    refused("weights-only h5 + the wrong architecture", r, os.path.join(tmp, "x.safetensors"),
            "do not fit", "expected", "found", "<- differs")
    r = convert("convert-keras", [src, os.path.join(tmp, "x.safetensors")], tmp)
    refused("weights-only h5 without --arch", r, os.path.join(tmp, "x.safetensors"), "--arch")

    test_keras_refusals(tmp)


def check_classify(net, model, tmp):
    """catdog classify --json on a flat gray photo (no resize artefacts:
    every input pixel is 128) against the Keras model on 128 raw."""
    from PIL import Image
    photo = os.path.join(tmp, "gray.jpg")
    Image.new("RGB", (24, 32), (128, 128, 128)).save(photo, quality=100)
    r = subprocess.run([os.environ["CATDOG"], "classify", "--json", "--model", model, photo],
                       capture_output=True, text=True)
    if not check(r.returncode == 0, f"catdog classify --json on the converted model "
                 f"(exit {r.returncode}) {r.stderr.strip()}"):
        return
    got = json.loads(r.stdout)["images"][0]["dog_probability"]
    x = np.full((1, 32, 24, 3), 128, dtype=np.float32)
    logit, _ = keras_reference(net, x, skip_rescaling=False)
    want = float(1 / (1 + np.exp(-logit[0])))
    check(abs(got - want) <= 1e-4, f"catdog classify: P(dog) {got:.6f}, Keras softmax "
          f"{want:.6f}")


def keras_bad(cls_cfg_patch, tmp, name):
    """A small Keras 2 .h5 with one layer's config patched (or replaced)."""
    net = KerasNet((16, 16, 3), seed=4)
    net.conv(4, 3).pool().flatten().dense(1, "sigmoid")
    idx, patch = cls_cfg_patch
    cls, lname, cfg, weights = net.layers[idx]
    cls = patch.pop("class_name", cls)
    net.layers[idx] = (cls, lname, dict(cfg, **patch), weights)
    path = os.path.join(tmp, name + ".h5")
    write_keras_h5(path, net)
    return path


def test_keras_refusals(tmp):
    out = os.path.join(tmp, "bad.safetensors")
    cases = [
        ("unknown layer", (1, {"class_name": "LSTM", "units": 4}), ["max_pooling2d", "LSTM"]),
        ("channels_first", (0, {"data_format": "channels_first"}), ["conv2d", "channels_first"]),
        ("non-square kernel", (0, {"kernel_size": [3, 5]}), ["conv2d", "[3, 5]", "square"]),
        ("dilation", (0, {"dilation_rate": [2, 2]}), ["conv2d", "dilation"]),
        ("unknown activation", (0, {"activation": "tanh"}), ["conv2d", "tanh"]),
        ("sigmoid inside", (0, {"activation": "sigmoid"}), ["conv2d", "sigmoid"]),
        ("strides 1x2", (1, {"strides": [1, 2]}), ["max_pooling2d", "strides"]),
        ("kernel shape", (0, {"filters": 5}), ["conv2d", "kernel", "shape"]),
    ]
    for label, patch, needles in cases:
        src = keras_bad(patch, tmp, label.replace(" ", "_"))
        refused(f"keras refuses: {label}", convert("convert-keras", [src, out], tmp), out,
                *needles)
    functional = os.path.join(tmp, "functional.h5")
    with h5py.File(functional, "w") as f:
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["model_config"] = json.dumps({"class_name": "Functional",
                                              "config": {"layers": []}}).encode()
        f.create_group("model_weights").attrs["layer_names"] = []
    refused("keras refuses: a Functional model", convert("convert-keras", [functional, out], tmp),
            out, "Functional", "Sequential")
    text = os.path.join(tmp, "notes.h5")
    with open(text, "w") as f:
        f.write("not a model\n")
    refused("keras refuses: a text file", convert("convert-keras", [text, out], tmp), out,
            "neither an HDF5 file nor a .keras")


# ----------------------------------------------------------------------
# PyTorch cases


class ToNHWC(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def torch_article():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 17 * 17, 512), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(512, 1))


class BnGapNet(nn.Module):
    """Batch norm, stride 2, padding 1, global average pooling, nested
    module names (features.0.weight, head.2.weight)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("0", nn.Conv2d(3, 16, 3, padding=1, bias=False)), ("1", nn.BatchNorm2d(16)),
            ("2", nn.ReLU()), ("3", nn.MaxPool2d(2)),
            ("4", nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)),
            ("5", nn.BatchNorm2d(32, eps=1e-3)), ("6", nn.ReLU()),
            ("7", nn.Conv2d(32, 24, 3)), ("8", nn.ReLU()),
            ("9", nn.BatchNorm2d(24, affine=False))]))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(24, 1))

    def forward(self, x):
        return self.head(self.features(x))


BN_GAP_SPEC = {"name": "bn-gap", "input": [40, 36, 3], "layers": [
    {"type": "conv2d", "name": "conv1", "filters": 16, "kernel": 3, "padding": 1, "bias": False},
    {"type": "batchnorm", "name": "bn1"}, {"type": "relu", "name": "relu1"},
    {"type": "maxpool", "name": "pool1", "size": 2},
    {"type": "conv2d", "name": "conv2", "filters": 32, "kernel": 3, "stride": 2, "padding": 1,
     "bias": False},
    {"type": "batchnorm", "name": "bn2", "eps": 1e-3}, {"type": "relu", "name": "relu2"},
    {"type": "conv2d", "name": "conv3", "filters": 24, "kernel": 3},
    {"type": "relu", "name": "relu3"}, {"type": "batchnorm", "name": "bn3"},
    {"type": "gap", "name": "gap"}, {"type": "dropout", "name": "drop", "rate": 0.3},
    {"type": "dense", "name": "fc", "units": 1}, {"type": "sigmoid", "name": "prob"}]}


def flat_bn_net(nhwc):
    """conv, flatten of a 6x5x4 map, BatchNorm1d, dense: the flatten order
    matters for both; nhwc permutes before flattening."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(),
                         *([ToNHWC()] if nhwc else []), nn.Flatten(), nn.BatchNorm1d(120),
                         nn.Linear(120, 8), nn.ReLU(), nn.Linear(8, 1))


FLAT_BN_SPEC = {"name": "flat-bn", "input": [13, 11, 3], "layers": [
    {"type": "conv2d", "name": "c", "filters": 4, "kernel": 3, "stride": 2},
    {"type": "relu", "name": "r"}, {"type": "flatten", "name": "flat"},
    {"type": "batchnorm", "name": "bn"}, {"type": "dense", "name": "fc1", "units": 8},
    {"type": "relu", "name": "r2"}, {"type": "dense", "name": "fc2", "units": 1}]}


def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(0.3 * (torch.rand(n, generator=g) * 2 - 1))
                m.running_var.copy_(0.5 + 0.4 * torch.rand(n, generator=g))
                if m.affine:
                    m.weight.copy_(1 + 0.5 * (torch.rand(n, generator=g) * 2 - 1))
                    m.bias.copy_(0.2 * (torch.rand(n, generator=g) * 2 - 1))
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                lim = (6.0 / m.weight[0].numel()) ** 0.5
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) * 2 - 1) * lim)
                if m.bias is not None:
                    m.bias.copy_(0.1 * (torch.rand(m.bias.shape, generator=g) * 2 - 1))
    return module.eval()


def torch_reference(module, x_nchw, rounded=None):
    """The module's own forward (logit) and its conv taps (after the
    batch norms and ReLUs right behind each conv), NHWC."""
    if rounded is not None:
        with torch.no_grad():
            for m in module.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.weight.copy_(m.weight.to(rounded).float())
    taps, state = [], {"open": False}

    def hook(m, _inp, out):
        if isinstance(m, nn.Conv2d):
            taps.append(out)
            state["open"] = True
        elif state["open"] and isinstance(m, (nn.BatchNorm2d, nn.ReLU)):
            taps[-1] = out
        else:
            state["open"] = False
    handles = [m.register_forward_hook(hook) for m in module.modules()
               if not list(m.children())]
    with torch.no_grad():
        logits = module(x_nchw).reshape(-1)
    for h in handles:
        h.remove()
    return logits.numpy(), [t.permute(0, 2, 3, 1).numpy() for t in taps if t.dim() == 4]


def test_torch(binary, tmp):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(11)

    def case(label, module, arch, args, input_chw, rounded=None, n=2):
        src = os.path.join(tmp, label.split()[0] + ".pt")
        out = os.path.join(tmp, label.split()[0] + ".safetensors")
        torch.save(module.state_dict(), src)
        if isinstance(arch, dict):
            path = os.path.join(tmp, arch["name"] + ".json")
            with open(path, "w") as f:
                json.dump(arch, f)
            arch = path
        r = convert("convert-torch", ["--arch", arch] + args + [src, out], tmp)
        x = torch.rand((n, *input_chw), generator=gen)
        if converted_ok(label, r, out):
            ref = torch_reference(module, x, rounded)
            compare(label, binary, out, x.permute(0, 2, 3, 1).numpy(), *ref, tmp)
        return src, out

    src, out = case("article-t nn.Sequential, --arch article", randomize(torch_article(), 1),
                    "article", [], (3, 150, 150))
    if os.path.exists(out):
        _, desc = metadata(out)
        check(desc["flatten"] == "hwc" and desc["name"] == "article-t"
              and desc["source"]["flatten"] == "chw",
              f"torch article: file says flatten {desc['flatten']}, name {desc['name']}")
    wrong = os.path.join(tmp, "wrong.safetensors")
    refused("torch refuses: article weights for catdog-v1",
            convert("convert-torch", ["--arch", "catdog-v1", src, wrong], tmp), wrong,
            "expected", "found", "conv1 (conv2d)", "<- differs")
    refused("torch refuses: --input changes the dense layer's size",
            convert("convert-torch", ["--arch", "article", "--input", "160x160", src, wrong],
                    tmp), wrong, "fc1 (dense): weight [512, 41472]", "<- differs")
    os.unlink(src)

    bn = randomize(BnGapNet(), 2)
    src, _ = case("bngap nested modules, BN + GAP", bn, BN_GAP_SPEC, [], (3, 40, 36), n=3)
    case("bngap16 --dtype f16", randomize(BnGapNet(), 2), BN_GAP_SPEC, ["--dtype", "f16"],
         (3, 40, 36), rounded=torch.float16)
    case("bngapbf16 --dtype bf16", randomize(BnGapNet(), 2), BN_GAP_SPEC,
         ["--dtype", "bf16", "--input", "40x36"], (3, 40, 36), rounded=torch.bfloat16)
    case("flatchw nn.Flatten + BatchNorm1d, --flatten chw", randomize(flat_bn_net(False), 3),
         FLAT_BN_SPEC, ["--flatten", "chw"], (3, 13, 11))
    case("flathwc NHWC flatten, --flatten hwc", randomize(flat_bn_net(True), 3),
         FLAT_BN_SPEC, ["--flatten", "hwc"], (3, 13, 11))

    # Refusals.
    bad = os.path.join(tmp, "bad.safetensors")
    short = dict(bn.state_dict())
    del short["head.3.weight"], short["head.3.bias"]
    torch.save(short, os.path.join(tmp, "short.pt"))
    path = os.path.join(tmp, "bn-gap.json")
    refused("torch refuses: a module missing",
            convert("convert-torch", ["--arch", path, os.path.join(tmp, "short.pt"), bad], tmp),
            bad, "7 weighted layers expected, 6", "fc (dense)")
    torch.save(bn, os.path.join(tmp, "module.pt"))
    refused("torch refuses: a pickled module",
            convert("convert-torch", ["--arch", path, os.path.join(tmp, "module.pt"), bad], tmp),
            bad, "state_dict")
    refused("torch refuses: an unknown architecture name",
            convert("convert-torch", ["--arch", "resnet50", src, bad], tmp), bad, "resnet50")

    # An existing file is kept without --force, replaced with it.
    keep = os.path.join(tmp, "keep.safetensors")
    with open(keep, "wb") as f:
        f.write(b"precious")
    r = convert("convert-torch", ["--arch", path, src, keep], tmp)
    check(r.returncode == 1 and "--force" in r.stderr and open(keep, "rb").read() == b"precious",
          "torch: an existing output is kept without --force")
    r = convert("convert-torch", ["--arch", path, "--force", src, keep], tmp)
    check(r.returncode == 0 and open(keep, "rb").read(8) != b"precious",
          "torch: --force replaces it")
    check(not [n for n in os.listdir(tmp) if n.endswith(".tmp")], "no temporary files left")


def c_builtins():
    """core/model.c's built-in architectures, {name: description}, read
    from its table of C string literals."""
    with open(os.path.join(ROOT, "core", "model.c"), encoding="utf-8") as f:
        source = f.read()
    start = source.index("builtin_specs[] = {")
    table = source[start:source.index("\n};", start)]
    # {"name", "{\"schema\":1, ..." "...}"}: C's adjacent literals and \"
    # escapes read the same in Python, in parentheses across lines.
    return {name: json.loads(ast.literal_eval(f"({literals})")) for name, literals in
            re.findall(r'\{"([^"]+)",\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}', table)}


def test_builtins():
    """The Python copy of the C core's built-in architectures
    (convert/catdog_convert.py, tests/lib/catdog_torch.py's ARTICLE) agrees with
    core/model.c, and catdog-v1 with the shipped model file."""
    py, c = cc.BUILTIN_ARCHS, c_builtins()
    check(sorted(c) == sorted(py), f"built-in names: core/model.c {sorted(c)}, Python {sorted(py)}")
    for name in sorted(set(c) & set(py)):
        check(py[name] == c[name], f"built-in '{name}' is core/model.c's")
    check(ct.ARTICLE == c.get("article"), "catdog_torch.ARTICLE is core/model.c's 'article'")
    if os.path.exists(SHIPPED):
        _, desc = metadata(SHIPPED)
        if desc["name"] == "catdog-v1":
            check(py["catdog-v1"]["layers"] == desc["layers"],
                  "built-in 'catdog-v1' is the shipped model's architecture")


def main():
    if len(sys.argv) != 2:
        print("usage: test_convert.py PARITY_RUN_BINARY", file=sys.stderr)
        return 2
    if not os.environ.get("CATDOG"):
        print("note: $CATDOG not set: converted files are not checked with catdog info")
    torch.set_num_threads(1)
    binary = os.path.abspath(sys.argv[1])
    test_builtins()
    with tempfile.TemporaryDirectory() as tmp:
        test_keras(binary, tmp)
        test_torch(binary, tmp)
    return pycheck.done("convert")


if __name__ == "__main__":
    sys.exit(main())
