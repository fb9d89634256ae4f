"""Shared pieces of the plug-in tests.

Each test gets its own folder under the build tree holding a private GIMP
profile (GIMP3_DIRECTORY) with the freshly built plug-in installed the way
`meson install` lays it out: plug-ins/catdog/{catdog, catdog.safetensors,
locale/}.  GIMP always runs headless, with --quit and under `timeout`, so
a failing batch command can never hang the suite.
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys

PROC = "plug-in-catdog-classify"
SRC = os.environ.get("CATDOG_SOURCE_ROOT", "")
CATDOG = os.environ.get("CATDOG", "")
PLUGIN = os.environ.get("CATDOG_PLUGIN", "")
MAKE_MODEL = os.environ.get("CATDOG_MAKE_MODEL", "")
WORK_ROOT = os.environ.get("CATDOG_PLUGIN_WORK", "")
DATA = os.path.join(SRC, "tests", "data")
SHIPPED_MODEL = os.path.join(SRC, "weights", "catdog.safetensors")
# gimp-console-3: the name GIMP 3.0 and 3.2 both install (3.2 has no
# gimp-console-3.0).
GIMP_CONSOLE = shutil.which("gimp-console-3")
# How many times slower than a plain build this build runs: meson sets it
# for a build under the sanitizers (tests/plugin/meson.build), whose
# timeouts it multiplies too; the waits below scale with it.
SLOWDOWN = max(1.0, float(os.environ.get("CATDOG_TEST_SLOWDOWN") or 1))
# One GIMP run: ~6 s with a fresh profile (it queries every plug-in),
# ~2 s after; the rest is our work.  Generous for a loaded 2-core machine.
GIMP_TIMEOUT = int(240 * SLOWDOWN)
# One `catdog` command of ours (a heat map, a classification).
CATDOG_TIMEOUT = int(300 * SLOWDOWN)


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def require_gimp():
    for name, value in [("CATDOG_SOURCE_ROOT", SRC), ("CATDOG", CATDOG),
                        ("CATDOG_PLUGIN", PLUGIN), ("CATDOG_PLUGIN_WORK", WORK_ROOT)]:
        if not value:
            skip(f"{name} is not set (run through meson test)")
    if not GIMP_CONSOLE:
        skip("gimp-console-3 is not installed (run through tools/gimp3-env)")
    if shutil.which("timeout") is None:
        skip("the timeout command is missing")


class Checks:
    """Counts checks; every failure is printed with what was expected."""

    def __init__(self):
        self.failures = 0
        self.count = 0

    def ok(self, cond, msg):
        self.count += 1
        print(("ok   " if cond else "FAIL ") + msg)
        if not cond:
            self.failures += 1
        return cond

    def near(self, got, want, tol, msg):
        good = got is not None and want is not None and abs(got - want) <= tol
        return self.ok(good, f"{msg}: {got!r} vs {want!r} (tolerance {tol:g})")

    def near_logit(self, got, want, tol, msg):
        """Probabilities compared as logits, the quantity the network
        computes: a small input change moves the logit by a similar amount
        whether the probability is near 0.5 or near 1."""
        def logit(p):
            p = min(max(p, 1e-6), 1 - 1e-6)
            return math.log(p / (1 - p))
        if got is None or want is None:
            return self.ok(False, f"{msg}: {got!r} vs {want!r}")
        diff = abs(logit(got) - logit(want))
        return self.ok(diff <= tol, f"{msg}: {got!r} vs {want!r} (logit difference "
                                    f"{diff:.3g}, tolerance {tol:g})")

    def gimp_ran(self, res):
        """Checks that a run_python() script ran to its end; returns its
        results, {} when it did not."""
        self.ok(res is not None and "exception" not in res,
                "GIMP ran the checks" +
                (f": {res['exception']}" if res and "exception" in res else ""))
        return res or {}

    def success(self, res, key):
        """Checks that the call recorded as res[key] (the prelude's
        classify()) succeeded."""
        r = res.get(key, {})
        return self.ok(r.get("status") == "success",
                       f"{key}: success ({r.get('error', r.get('status'))})")

    def refused(self, res, key, word, what):
        """Checks that the call recorded as res[key] failed with an
        execution error whose message holds word, and that the script
        found the image's layers as they were (res[key]
        ["layers_unchanged"])."""
        r = res.get(key, {})
        self.ok(r.get("status") == "execution-error" and word in r.get("error", ""),
                f"{what}: refused ({r.get('error')})")
        return self.ok(r.get("layers_unchanged"), f"{what}: layers unchanged")

    def done(self):
        print(f"{self.count - self.failures}/{self.count} checks passed")
        sys.exit(1 if self.failures else 0)


# CATDOG_EXTENSION_STAGE=1: the tests run against the plug-in laid out as
# the Flatpak extension installs it (flatpak/), not in the profile:
# STAGE/plug-ins/catdog/ with the libraries the runtime lacks (libcjson)
# in STAGE/lib; GIMP finds the plug-in through the plug-in path of the
# profile's gimprc (as the Flatpak GIMP finds merged extension plug-ins)
# and the libraries through LD_LIBRARY_PATH (what add-ld-path sets).
EXTENSION = os.environ.get("CATDOG_EXTENSION_STAGE") == "1"
# Libraries the Flatpak runtime (org.gimp.GIMP) does not have, which the
# extension bundles: their sonames.
BUNDLED_LIBS = ("libcjson.so.1",)


def linked_libs(binary, env=None):
    """{soname: resolved path} of binary, from ldd."""
    proc = subprocess.run(["ldd", binary], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
    libs = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    return libs


class Profile:
    """A private GIMP profile with the built plug-in installed (install:
    False leaves the plug-in out, for tests that install it themselves)."""

    def __init__(self, name, install=True):
        if EXTENSION:
            name += "-extension"
        self.work = os.path.join(WORK_ROOT, name)
        self.profile = os.path.join(self.work, "profile")
        self.files = os.path.join(self.work, "files")
        # The profile survives between runs (GIMP then skips re-querying
        # unchanged plug-ins); the test's own files do not.
        shutil.rmtree(self.files, ignore_errors=True)
        os.makedirs(self.files)
        self.stage = os.path.join(self.work, "extension")
        if EXTENSION:
            self.plugin_dir = os.path.join(self.stage, "plug-ins", "catdog")
            self.stage_extension()
        else:
            self.plugin_dir = os.path.join(self.profile, "plug-ins", "catdog")
        # No installed models, no default: each test starts from the
        # shipped model.
        shutil.rmtree(self.models_dir(), ignore_errors=True)
        if not install:
            shutil.rmtree(self.plugin_dir, ignore_errors=True)
            return
        os.makedirs(os.path.join(self.plugin_dir, "locale"), exist_ok=True)
        shutil.copy2(PLUGIN, os.path.join(self.plugin_dir, "catdog"))
        shutil.copy2(SHIPPED_MODEL, os.path.join(self.plugin_dir, "catdog.safetensors"))
        # The catalogs meson built, where set_i18n points GIMP.
        build = os.environ.get("CATDOG_BUILD_ROOT", "")
        po = os.path.join(build, "po")
        for lang in (os.listdir(po) if build and os.path.isdir(po) else []):
            mo = os.path.join(po, lang, "LC_MESSAGES", "gimp-catdog.mo")
            if os.path.exists(mo):
                dst = os.path.join(self.plugin_dir, "locale", lang, "LC_MESSAGES")
                os.makedirs(dst, exist_ok=True)
                shutil.copy2(mo, dst)

    def stage_extension(self):
        """The extension's prefix: an empty plug-ins/ (filled like a
        profile's), lib/ with the bundled libraries, and a profile whose
        gimprc adds STAGE/plug-ins to GIMP's plug-in path."""
        shutil.rmtree(self.stage, ignore_errors=True)
        lib = os.path.join(self.stage, "lib")
        os.makedirs(lib)
        os.makedirs(self.profile, exist_ok=True)
        # A plug-in left in the profile itself would be found first.
        shutil.rmtree(os.path.join(self.profile, "plug-ins", "catdog"), ignore_errors=True)
        linked = linked_libs(PLUGIN)
        for soname in BUNDLED_LIBS:
            if soname in linked:
                shutil.copy2(os.path.realpath(linked[soname]), os.path.join(lib, soname))
        with open(os.path.join(self.profile, "gimprc"), "w") as f:
            f.write('(plug-in-path "${gimp_dir}/plug-ins:${gimp_plug_in_dir}/plug-ins:'
                    + os.path.join(self.stage, "plug-ins") + '")\n')

    def models_dir(self):
        """The user's models folder (what Install weights fills)."""
        return os.path.join(self.profile, "catdog", "models")

    def user_model_path(self):
        return os.path.join(self.models_dir(), "user.safetensors")

    def default_marker_path(self):
        """Names the default model of the models folder."""
        return os.path.join(self.models_dir(), "default")

    def install_user_model(self, src):
        """Puts src in the models folder as the default model, as
        plug-in-catdog-install-weights with make-default would."""
        os.makedirs(self.models_dir(), exist_ok=True)
        shutil.copy(src, self.user_model_path())
        with open(self.default_marker_path(), "w") as f:
            f.write(os.path.basename(self.user_model_path()) + "\n")

    def path(self, *parts):
        return os.path.join(self.files, *parts)

    def env(self):
        env = dict(os.environ)
        env.pop("DISPLAY", None)
        env["GIMP3_DIRECTORY"] = self.profile
        if EXTENSION:
            lib = os.path.join(self.stage, "lib")
            env["LD_LIBRARY_PATH"] = ":".join(
                [lib] + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p])
        env["XDG_CACHE_HOME"] = os.path.join(self.work, "cache")
        return env

    def run(self, argv, cwd=None, timeout=GIMP_TIMEOUT):
        """Runs a command line (a GIMP batch run) under `timeout`."""
        full = ["timeout", "-k", "10", str(timeout)] + argv
        proc = subprocess.run(full, cwd=cwd or self.files, env=self.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        return proc

    def write_script(self, script, params):
        """Writes script, inside the prelude and epilogue below, and PARAMS
        (a dict, available to it as P) to the test's folder; returns the
        -b argument of python-fu-eval that runs it."""
        with open(self.path("params.json"), "w") as f:
            json.dump(params, f)
        with open(self.path("script.py"), "w") as f:
            f.write(f"PARAMS_FILE = {self.path('params.json')!r}\n")
            f.write(GIMP_PRELUDE)
            f.write(indent(script))
            f.write(GIMP_EPILOGUE)
        return f"exec(open({self.path('script.py')!r}).read())"

    def run_python(self, script, params, timeout=GIMP_TIMEOUT):
        """Runs script inside GIMP (python-fu-eval) with PARAMS, a dict
        available to it as a JSON file; returns the JSON it writes to
        PARAMS["result"], or None (the run's output is printed)."""
        params = dict(params, result=self.path("result.json"))
        code = self.write_script(script, params)
        proc = self.run([GIMP_CONSOLE, "-i", "--batch-interpreter=python-fu-eval",
                         "-b", code, "--quit"], timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(params["result"]):
            print(f"GIMP exited with {proc.returncode}")
            print(proc.stdout)
            print(proc.stderr)
            return None
        with open(params["result"]) as f:
            return json.load(f)


# Helpers available to scripts run inside GIMP.
GIMP_PRELUDE = r'''
import json, os, shutil, traceback
import gi
gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gimp, Gio, Gegl

P = json.load(open(PARAMS_FILE))
R = {}
PDB = Gimp.get_pdb()


def load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))


def save_xcf(image, path):
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path), None)


def count_layers(image):
    """All layers, inside groups too."""
    def walk(items):
        n = 0
        for it in items:
            n += 1
            if it.is_group():
                n += walk(it.get_children())
        return n
    return walk(image.get_layers())


def classify(image, **args):
    """Runs the procedure; returns a dict with status and return values
    or the error message."""
    proc = PDB.lookup_procedure("plug-in-catdog-classify")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", image.get_selected_layers())
    for name, value in args.items():
        name = name.replace("_", "-")
        if name == "model":
            value = Gio.File.new_for_path(value)
        config.set_property(name, value)
    values = proc.run(config)
    status = values.index(0)
    if status == Gimp.PDBStatusType.SUCCESS:
        return {"status": "success", "label": values.index(1),
                "probability": values.index(2), "dog_probability": values.index(3)}
    return {"status": status.value_nick, "error": PDB.get_last_error()}


def layer_tree(items):
    out = []
    for it in items:
        ok, x, y = it.get_offsets()
        node = {"name": it.get_name(), "group": it.is_group(),
                "width": it.get_width(), "height": it.get_height(),
                "x": x, "y": y, "visible": it.get_visible()}
        if it.is_group():
            node["children"] = layer_tree(it.get_children())
        out.append(node)
    return out


def find_layer(items, name):
    for it in items:
        if it.get_name() == name:
            return it
        if it.is_group():
            found = find_layer(it.get_children(), name)
            if found:
                return found
    return None


def dump_pixels(layer, path, fmt="R'G'B' u8"):
    """The layer's pixels as 8-bit sRGB (fmt: a babl format), row after
    row."""
    buf = layer.get_buffer()
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    data = buf.get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE)
    with open(path, "wb") as f:
        f.write(bytes(data))


try:
'''

GIMP_EPILOGUE = r'''
except Exception:
    R["exception"] = traceback.format_exc()
with open(P["result"], "w") as f:
    json.dump(R, f, indent=1)
'''


def indent(script):
    """Scripts are written flush left; they run inside the prelude's try."""
    return "".join("    " + line if line.strip() else line
                   for line in script.splitlines(True))


def catdog_classify(files, model, options=()):
    """`catdog classify --json` (and options) on files: {file: (label, p, p_dog)}."""
    proc = subprocess.run([CATDOG, "classify", "--json", "--model", model, *options] + files,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=CATDOG_TIMEOUT)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr)
        return {}
    doc = json.loads(proc.stdout)
    return {im["file"]: (im["label"], im["probability"], im["dog_probability"])
            for im in doc["images"] if "label" in im}


def model_info(path):
    """`catdog info` output, or None when the file does not load."""
    proc = subprocess.run([CATDOG, "info", path], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else None


# A model must be at least this good (its recorded validation accuracy)
# before the tests hold it to calling the sample cats cats and dogs dogs.
GOOD_ACCURACY = 0.7


def test_model(profile):
    """(path, trained, good): the shipped model when it is a real one, else
    an untrained article network with fixed random weights (enough for
    everything but the cat/dog verdicts); good: trained well enough for
    the verdicts to be checked."""
    info = model_info(SHIPPED_MODEL) if os.path.getsize(SHIPPED_MODEL) > 0 else None
    if info:
        m = re.search(r"val_accuracy ([0-9.]+)", info)
        accuracy = float(m.group(1)) if m else 0.0
        if accuracy < GOOD_ACCURACY:
            print(f"     (the shipped model records val_accuracy {accuracy}, below "
                  f"{GOOD_ACCURACY}: its cat/dog verdicts are not checked)")
        return SHIPPED_MODEL, True, accuracy >= GOOD_ACCURACY
    print("     (the shipped model is a placeholder: an untrained network stands in,"
          " cat/dog verdicts are not checked)")
    path = profile.path("random-article.safetensors")
    subprocess.run([MAKE_MODEL, "article", "7", path], check=True, timeout=120)
    return path, False, False


def crop_jpeg(src, dst, width, height, quality=95):
    """A photo small enough that `catdog classify` decodes it at full size
    (no DCT scaling), exactly as GIMP does: the same pixels on both sides."""
    from PIL import Image
    with Image.open(src) as im:
        left = (im.width - width) // 2
        top = (im.height - height) // 2
        im.crop((left, top, left + width, top + height)).save(dst, quality=quality)
