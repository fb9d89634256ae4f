"""Shared parts of convert/convert-keras and convert/convert-torch.

Both converters end the same way: a list of layers in the catdog
description's terms (weights/README.md) plus float32 tensors in our
canonical layouts (conv OIHW, dense [units][in] with "in" in (h, w, c)
order), turned into a safetensors file with complete metadata, written
atomically and, when a built catdog is at hand ($CATDOG_BIN), checked by
our own loader.  Everything here needs only numpy.
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np


class ConvertError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


def _builtin(name, layers):
    """A built-in architecture as core/model.c describes it: 150x150 RGB
    photos, cat or dog, the article's 1/255 rescale."""
    return {"schema": 1, "name": name, "input": [150, 150, 3], "labels": ["cat", "dog"],
            "preprocess": {"resize": "squash", "scale": 1 / 255, "mean": [0, 0, 0],
                           "std": [1, 1, 1]},
            "flatten": "hwc", "layers": layers}


def _catdog_stages(name, widths):
    """The catdog-v1/v2 family: 3x3 "same" convs without bias, each with
    batch-norm and ReLU, a 2x2 max-pool after the first four, then global
    average pooling, dropout 0.3 and one dense unit."""
    return _builtin(name, [
        layer
        for i, filters in enumerate(widths, start=1)
        for layer in (
            {"type": "conv2d", "name": f"conv{i}", "filters": filters, "kernel": 3,
             "stride": 1, "padding": "same", "bias": False},
            {"type": "batchnorm", "name": f"bn{i}", "eps": 1e-5},
            {"type": "relu", "name": f"relu{i}"},
        ) + (({"type": "maxpool", "name": f"pool{i}", "size": 2, "stride": 2},)
             if i < 5 else ())
    ] + [
        {"type": "gap", "name": "gap"},
        {"type": "dropout", "name": "drop", "rate": 0.3},
        {"type": "dense", "name": "fc", "units": 1, "bias": True},
        {"type": "sigmoid", "name": "prob"},
    ])


# The built-in architectures of core/model.c, by the names `catdog train
# --arch` knows: the one Python copy of them (tests/lib/catdog_torch.py's
# ARTICLE is this one too); tests/convert checks it against core/model.c.
BUILTIN_ARCHS = {
    "article": _builtin("article", [
        {"type": "conv2d", "name": "conv1", "filters": 32, "kernel": 3, "stride": 1,
         "padding": "valid"},
        {"type": "relu", "name": "relu1"},
        {"type": "maxpool", "name": "pool1", "size": 2, "stride": 2},
        {"type": "conv2d", "name": "conv2", "filters": 64, "kernel": 3, "stride": 1,
         "padding": "valid"},
        {"type": "relu", "name": "relu2"},
        {"type": "maxpool", "name": "pool2", "size": 2, "stride": 2},
        {"type": "conv2d", "name": "conv3", "filters": 128, "kernel": 3, "stride": 1,
         "padding": "valid"},
        {"type": "relu", "name": "relu3"},
        {"type": "maxpool", "name": "pool3", "size": 2, "stride": 2},
        {"type": "flatten", "name": "flatten"},
        {"type": "dense", "name": "fc1", "units": 512},
        {"type": "relu", "name": "relu4"},
        {"type": "dropout", "name": "drop1", "rate": 0.5},
        {"type": "dense", "name": "fc2", "units": 1},
        {"type": "sigmoid", "name": "prob"},
    ]),
    "catdog-v1": _catdog_stages("catdog-v1", (32, 64, 128, 256, 256)),
    # catdog-v1 with a wider, doubled last stage (two 384-filter convs at 9 x 9).
    "catdog-v2": _catdog_stages("catdog-v2", (32, 64, 128, 256, 384, 384)),
}

# Members each layer type may have besides "type" and "name" (the loader
# refuses any other, so we do too, before any work is done).
LAYER_KEYS = {
    "conv2d": {"filters", "kernel", "stride", "padding", "bias"},
    "batchnorm": {"eps"},
    "relu": set(),
    "maxpool": {"size", "stride"},
    "dense": {"units", "bias"},
    "sigmoid": set(),
    "dropout": {"rate"},
    "flatten": set(),
    "gap": set(),
}
# Weighted layer types and the tensors they own, in file order.
TENSOR_SUFFIXES = {
    "conv2d": ("weight", "bias"),
    "dense": ("weight", "bias"),
    "batchnorm": ("weight", "bias", "running_mean", "running_var"),
}
MAX_NAME = 63           # layer names (CNN_MAX_NAME - 1)
MAX_MODEL_NAME = 127
MAX_LABEL = 31
MAX_INPUT_SIZE = 4096
MAX_UNITS = 8192
MAX_PARAMS = 1 << 28
DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
_LAYER_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,%d}$" % MAX_NAME)


def fail(message):
    raise ConvertError(message)


# ----------------------------------------------------------------------
# Architecture descriptions


def load_arch(text):
    """A catdog description from a built-in name or a JSON file."""
    if text in BUILTIN_ARCHS:
        return json.loads(json.dumps(BUILTIN_ARCHS[text]))
    if not os.path.exists(text):
        fail(f"--arch {text}: neither a built-in architecture "
             f"({', '.join(sorted(BUILTIN_ARCHS))}) nor an existing JSON file")
    return read_json(text, "--arch")


def read_json(path, what):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError:
        fail(f"{what} {path}: not UTF-8 text")
    except json.JSONDecodeError as e:
        fail(f"{what} {path}: not valid JSON ({e})")


def is_catdog_description(doc):
    return (isinstance(doc, dict) and isinstance(doc.get("layers"), list)
            and all(isinstance(layer, dict) and "type" in layer for layer in doc["layers"]))


def _int_member(layer, key, lo, hi, default=None):
    v = layer.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        fail(f"layer \"{layer.get('name')}\": \"{key}\" must be an integer from {lo} to {hi}, "
             f"not {json.dumps(v)}")
    return v


def check_layers(layers):
    """The structural rules of weights/README.md: known types, valid and
    unique names, only the members a type allows."""
    if not isinstance(layers, list) or not 1 <= len(layers) <= 128:
        fail("\"layers\" must be a list of 1 to 128 layer objects")
    seen = set()
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            fail(f"layer #{i + 1} is not a JSON object")
        t, name = layer.get("type"), layer.get("name")
        if t not in LAYER_KEYS:
            fail(f"layer #{i + 1} ({json.dumps(name)}): unknown type {json.dumps(t)} "
                 f"(known: {', '.join(sorted(LAYER_KEYS))})")
        if not isinstance(name, str) or not _LAYER_NAME_RE.match(name):
            fail(f"layer #{i + 1}: name {json.dumps(name)} must be 1 to {MAX_NAME} characters "
                 "from A-Z a-z 0-9 _ . -")
        if name in seen:
            fail(f"layer \"{name}\": the name is used twice")
        seen.add(name)
        extra = set(layer) - LAYER_KEYS[t] - {"type", "name"}
        if extra:
            fail(f"layer \"{name}\": {t} has no member {', '.join(sorted(extra))} "
                 f"(allowed: {', '.join(sorted(LAYER_KEYS[t])) or 'none'})")
        if t == "sigmoid" and i != len(layers) - 1:
            fail(f"layer \"{name}\": sigmoid may only be the last layer")


def conv_pads(layer, h, w):
    """(top, bottom, left, right) padding of a conv2d on an h x w input."""
    k, s = layer["kernel"], layer.get("stride", 1)
    pad = layer.get("padding", "valid")
    if pad == "valid":
        return 0, 0, 0, 0
    if pad == "same":
        def same(size):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            return total // 2, total - total // 2
        return same(h) + same(w)
    if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < k:
        fail(f"layer \"{layer['name']}\": padding must be \"valid\", \"same\" or an integer "
             f"from 0 to {k - 1}, not {json.dumps(pad)}")
    return (pad,) * 4


def infer_shapes(input_hwc, layers):
    """Follows weights/README.md's shape rules through the layers.

    Returns (expected, flatten_maps): expected maps each tensor name to its
    shape, in file order; flatten_maps maps the name of every flatten layer
    to the (h, w, c) map it flattens."""
    expected, flatten_maps, (h, w, c, _) = walk_shapes(input_hwc, layers)
    if h * w * c != 1:
        fail(f"the network must end in exactly 1 value (the logit), but its last layer "
             f"\"{layers[-1]['name']}\" outputs {h * w * c}: end it in a dense layer of 1 unit")
    return expected, flatten_maps


def walk_shapes(input_hwc, layers):
    """infer_shapes() for a network under construction: also returns the
    output shape (h, w, c, flat) of the last layer, without requiring it
    to be a single value."""
    check_layers(layers)
    h, w, c = input_hwc
    flat = False
    expected = {}
    flatten_maps = {}
    params = 0
    for i, layer in enumerate(layers):
        t, name = layer["type"], layer["name"]
        where = f"{h}x{w}x{c}" if not flat else f"{c} features"
        if t in ("conv2d", "maxpool"):
            if flat:
                fail(f"layer \"{name}\": {t} needs an image-shaped input, got {where} "
                     "(it follows a flatten, dense or gap)")
            if t == "conv2d":
                k = _int_member(layer, "kernel", 1, 4096)
                s = _int_member(layer, "stride", 1, 4096, 1)
                f = _int_member(layer, "filters", 1, MAX_UNITS)
                if not isinstance(layer.get("bias", True), bool):
                    fail(f"layer \"{name}\": \"bias\" must be true or false")
                pt, pb, pl, pr = conv_pads(layer, h, w)
            else:
                k = _int_member(layer, "size", 1, 4096)
                s = _int_member(layer, "stride", 1, 4096, k)
                pt = pb = pl = pr = 0
            if k > h + pt + pb or k > w + pl + pr:
                fail(f"layer \"{name}\": {'kernel' if t == 'conv2d' else 'window'} {k} is "
                     f"larger than its {where} input")
            h, w = (h + pt + pb - k) // s + 1, (w + pl + pr - k) // s + 1
            if t == "conv2d":
                expected[f"{name}.weight"] = [f, c, k, k]
                if layer.get("bias", True):
                    expected[f"{name}.bias"] = [f]
                params += f * c * k * k + f
                c = f
        elif t == "batchnorm":
            eps = layer.get("eps", 1e-5)
            if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
                fail(f"layer \"{name}\": \"eps\" must be in (0, 1], not {json.dumps(eps)}")
            for suffix in TENSOR_SUFFIXES["batchnorm"]:
                expected[f"{name}.{suffix}"] = [c]
            params += 4 * c
        elif t == "dense":
            if not flat and (h > 1 or w > 1):
                fail(f"layer \"{name}\": dense needs a flatten or gap before it "
                     f"(its input is {where})")
            units = _int_member(layer, "units", 1, MAX_UNITS)
            if not isinstance(layer.get("bias", True), bool):
                fail(f"layer \"{name}\": \"bias\" must be true or false")
            expected[f"{name}.weight"] = [units, c]
            if layer.get("bias", True):
                expected[f"{name}.bias"] = [units]
            params += units * c + units
            h, w, c, flat = 1, 1, units, True
        elif t == "flatten":
            flatten_maps[name] = (h, w, c)
            h, w, c, flat = 1, 1, h * w * c, True
        elif t == "gap":
            if flat:
                fail(f"layer \"{name}\": gap needs an image-shaped input, got {where}")
            h, w, flat = 1, 1, True
        elif t == "dropout":
            rate = layer.get("rate", 0.5)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
                fail(f"layer \"{name}\": \"rate\" must be in [0, 1), not {json.dumps(rate)}")
        if params > MAX_PARAMS:
            fail(f"layer \"{name}\": the model has more than the limit of {MAX_PARAMS} parameters")
    return expected, flatten_maps, (h, w, c, flat)


def mismatch_table(title, expected, found):
    """An error message setting expected tensors beside found ones, one
    layer per row, marking the first row that differs."""
    rows = max(len(expected), len(found))
    width = max([len(e) for e in expected] + [len("expected")])
    lines = [title, f"     {'expected':<{width}}  found"]
    marked = False
    for i in range(rows):
        e = expected[i] if i < len(expected) else "-"
        f = found[i] if i < len(found) else "-"
        mark = ""
        if not marked and e.split(": ", 1)[-1] != f.split(": ", 1)[-1]:
            mark, marked = "   <- differs", True
        lines.append(f"{i + 1:>3}  {e:<{width}}  {f}{mark}")
    return "\n".join(lines)


def unique_layer_name(wanted, used):
    """A valid layer name close to `wanted`, not in `used` (which it joins)."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", wanted)[:MAX_NAME] or "layer"
    name, n = base, 1
    while name in used:
        tail = f"_{n}"
        name = base[:MAX_NAME - len(tail)] + tail
        n += 1
    used.add(name)
    return name


# ----------------------------------------------------------------------
# Command line


def parse_input_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW (e.g. 150x150)")
    h, w = int(m.group(1)), int(m.group(2))
    if not (1 <= h <= MAX_INPUT_SIZE and 1 <= w <= MAX_INPUT_SIZE):
        raise argparse.ArgumentTypeError(f"{text}: height and width must be 1 to {MAX_INPUT_SIZE}")
    return h, w


def parse_number(text):
    """A float, or a fraction such as 1/255."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            v = float(num) / float(den)
        else:
            v = float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite")
    return v


def parse_numbers(text):
    parts = text.split(",")
    if len(parts) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or 3 comma-separated numbers")
    return [parse_number(p) for p in parts]


def parse_labels(text):
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or parts[0] == parts[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: give two different labels, e.g. cat,dog")
    for p in parts:
        if not is_plain_text(p, MAX_LABEL):
            raise argparse.ArgumentTypeError(f"label {p!r} must be 1 to {MAX_LABEL} printable bytes")
    return parts


def is_plain_text(s, max_bytes):
    """The loader's rule for names and labels: 1 to max_bytes bytes of
    UTF-8, no control characters."""
    n = len(s.encode())
    return 0 < n <= max_bytes and not any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in s)


def add_common_options(parser, input_help):
    """Options both converters share; see their --help."""
    parser.add_argument("input", metavar="INPUT", help=input_help)
    parser.add_argument("output", metavar="OUT.safetensors", help="the model file to write")
    parser.add_argument("--name", help="model name stored in the file (default: INPUT's file "
                        "name without its extension)")
    parser.add_argument("--labels", type=parse_labels, metavar="A,B",
                        help="class names; the output is P(B) (default: cat,dog)")
    parser.add_argument("--input", dest="input_size", type=parse_input_size, metavar="HxW",
                        help="input height and width (default: the model's or the "
                        "architecture's)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f32",
                        help="storage of conv and dense weights; biases and batch-norm "
                        "tensors stay f32 (default: f32)")
    parser.add_argument("--scale", type=parse_number, metavar="S",
                        help="preprocessing: pixel values 0..255 are multiplied by S "
                        "(default: the model's own preprocessing where it has one, else "
                        "1/255, the article's rescale)")
    parser.add_argument("--mean", type=parse_numbers, metavar="M[,M,M]",
                        help="preprocessing: subtracted after scaling (default: 0)")
    parser.add_argument("--std", type=parse_numbers, metavar="S[,S,S]",
                        help="preprocessing: divides after the mean (default: 1)")
    parser.add_argument("--resize", choices=("squash", "crop"),
                        help="how a photo becomes the input size (default: squash)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def check_output(path, force):
    if os.path.isdir(path):
        fail(f"{path} is a folder; give the name of the file to write")
    if os.path.lexists(path) and not force:
        fail(f"{path} exists; use --force to replace it")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        fail(f"{path}: folder {folder} does not exist")


def build_description(spec, args, layers, input_hwc, source):
    """The catdog description to store: the command line's values where
    given, else the architecture's own (name, labels, preprocess,
    temperature, metrics...), else the defaults."""
    desc = {k: v for k, v in spec.items()
            if k not in ("schema", "name", "input", "labels", "preprocess", "flatten", "layers")}
    name = args.name
    if name is None:
        name = os.path.splitext(os.path.basename(args.input))[0]
        if name.endswith(".weights"):
            name = name[:-len(".weights")]
    if not is_plain_text(name, MAX_MODEL_NAME):
        fail(f"model name {name!r} must be 1 to {MAX_MODEL_NAME} printable bytes (use --name)")
    pre = dict(spec.get("preprocess") or {})
    for key, value in (("scale", args.scale), ("mean", args.mean), ("std", args.std),
                       ("resize", args.resize)):
        if value is not None:
            pre[key] = value
    channels = input_hwc[2]
    pre.setdefault("resize", "squash")
    pre.setdefault("scale", 1 / 255)
    pre.setdefault("mean", [0.0] * channels)
    pre.setdefault("std", [1.0] * channels)
    for key in ("mean", "std"):
        if len(pre[key]) == 1 and channels == 3:
            pre[key] = pre[key] * 3
        if len(pre[key]) != channels and not (channels == 1 and len(pre[key]) == 3):
            fail(f"--{key}: give {channels} value(s) for a {channels}-channel input")
    if not pre["scale"] > 0:
        fail("--scale must be > 0")
    if not all(s > 0 for s in pre["std"]):
        fail("--std values must be > 0")
    out = {
        "schema": 1,
        "name": name,
        "input": list(input_hwc),
        "labels": args.labels or spec.get("labels") or ["cat", "dog"],
        "preprocess": pre,
        "flatten": "hwc",
        "layers": layers,
    }
    out.update(desc)
    out["source"] = source
    return out


# ----------------------------------------------------------------------
# Writing


def _encode(name, values, dtype):
    """Little-endian bytes of a float32 array in F32, F16 or BF16 (rounded
    to nearest, ties to even, as cnn_model_save does)."""
    values = np.ascontiguousarray(values, dtype="<f4")
    if dtype == "F32":
        return values.tobytes()
    if dtype == "F16":
        with np.errstate(over="ignore"):
            half = values.astype("<f2")
        if not np.isfinite(half).all():
            fail(f"tensor {name}: a value beyond 65504 does not fit F16; use --dtype f32 or bf16")
        return half.tobytes()
    bits = values.view("<u4")
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
               >> np.uint32(16)).astype("<u2")
    if ((rounded & 0x7F80) == 0x7F80).any():
        fail(f"tensor {name}: a value too large for BF16; use --dtype f32")
    return rounded.tobytes()


def check_tensors(layers, tensors, expected):
    """The converted tensors are exactly what the layers call for."""
    missing = [n for n in expected if n not in tensors]
    extra = [n for n in tensors if n not in expected]
    if missing or extra:
        fail("internal mismatch: " + "; ".join(
            (["missing " + ", ".join(missing)] if missing else [])
            + (["unexpected " + ", ".join(extra)] if extra else [])))
    for name, shape in expected.items():
        got = list(tensors[name].shape)
        if got != shape:
            fail(f"tensor {name}: shape {got}, but the architecture needs {shape}")
        if not np.isfinite(tensors[name]).all():
            fail(f"tensor {name}: holds NaN or infinite values")
    for layer in layers:
        if layer["type"] == "batchnorm" and (tensors[layer["name"] + ".running_var"] < 0).any():
            fail(f"tensor {layer['name']}.running_var: negative variance")


def serialize(description, tensors, dtype):
    """safetensors bytes: tensors in layer order; conv/dense weights in
    `dtype`, the rest F32."""
    header = {"__metadata__": {"format": "catdog", "catdog": json.dumps(description)}}
    chunks, offset = [], 0
    for name, values in tensors.items():
        kind = dtype if name.endswith(".weight") and values.ndim > 1 else "F32"
        data = _encode(name, values, kind)
        header[name] = {"dtype": kind, "shape": list(values.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, chunks


def write_model(prog, path, description, tensors, dtype, force):
    """Writes the file atomically (temporary file, fsync, rename), after
    checking it with `catdog info` when $CATDOG_BIN names a built catdog.
    Returns catdog info's report (None when not checked)."""
    layers = description["layers"]
    expected, _ = infer_shapes(description["input"], layers)
    ordered = {n: np.asarray(tensors[n], dtype=np.float32) for n in expected if n in tensors}
    ordered.update({n: v for n, v in tensors.items() if n not in ordered})
    check_tensors(layers, ordered, expected)
    head, chunks = serialize(description, ordered, DTYPES[dtype])

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask)  # not mkstemp's 0600: others may read it
            f.write(head)
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        report = verify(prog, tmp)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if someone created `path` meanwhile
            except FileExistsError:
                fail(f"{path} exists; use --force to replace it")
            except OSError:
                if os.path.lexists(path):
                    fail(f"{path} exists; use --force to replace it")
                os.replace(tmp, path)
        try:
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # not every file system lets a folder be fsynced
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return report if report is None else report.replace(tmp, path)


def verify(prog, path):
    catdog = os.environ.get("CATDOG_BIN")
    if not catdog:
        print(f"{prog}: note: not checked with our loader (set CATDOG_BIN to a built "
              "catdog to run `catdog info` on the result)", file=sys.stderr)
        return None
    try:
        r = subprocess.run([catdog, "info", path], capture_output=True, text=True, timeout=300)
    except OSError as e:
        fail(f"CATDOG_BIN={catdog}: cannot run it ({e.strerror})")
    except subprocess.TimeoutExpired:
        fail(f"CATDOG_BIN={catdog}: `catdog info` did not finish in 5 minutes, nothing written")
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).replace(path, "the converted file")
        fail(f"our loader refuses the converted file, nothing written: {msg}")
    return r.stdout


def run(prog, main):
    """Runs main(); a ConvertError or an unreadable file ends the program
    with one line on stderr and exit status 1."""
    try:
        main()
    except ConvertError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted, nothing written", file=sys.stderr)
        sys.exit(130)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        # Input files are untrusted: a member of the wrong type or an
        # entry that is missing where every real file has it ends here.
        print(f"{prog}: the input is not what a Keras or PyTorch model file holds "
              f"({type(e).__name__}: {e}); nothing written", file=sys.stderr)
        sys.exit(1)
