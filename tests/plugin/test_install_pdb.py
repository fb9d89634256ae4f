#!/usr/bin/env python3
"""plug-in-catdog-install-weights through gimp-console: a valid model is
installed into <profile>/catdog/models and returned; the same name is
refused unless "overwrite"; a truncated file, a wrong checksum, a
non-model file and a 4 EiB header length are refused with a message
naming the problem and leave the folder as it was, and so is a call
without a file; "make-default" makes plug-in-catdog-classify use it when
no model is given."""
import hashlib
import os
import shutil

import gimptest as gt

gt.require_gimp()
checks = gt.Checks()
profile = gt.Profile("install-pdb")
model, _, _ = gt.test_model(profile)
with open(model, "rb") as f:
    data = f.read()
good = profile.path("mine.safetensors")
shutil.copy(model, good)
truncated = profile.path("truncated.safetensors")
with open(truncated, "wb") as f:
    f.write(data[: len(data) // 3])
summed = profile.path("summed.safetensors")
shutil.copy(model, summed)
with open(summed + ".sha256", "w") as f:
    f.write("f" * 64 + "  summed.safetensors\n")
notes = profile.path("notes.safetensors")
with open(notes, "w") as f:
    f.write("not a model\n")
# A header length of 4 EiB: refused before any allocation.
huge = profile.path("huge.safetensors")
with open(huge, "wb") as f:
    f.write((1 << 62).to_bytes(8, "little") + b'{"__metadata__": {}}')

SCRIPT = r'''
proc = PDB.lookup_procedure("plug-in-catdog-install-weights")


def install(path, **args):
    config = proc.create_config()
    if path:
        config.set_property("file", Gio.File.new_for_path(path))
    for name, value in args.items():
        config.set_property(name.replace("_", "-"), value)
    values = proc.run(config)
    if values.index(0) == Gimp.PDBStatusType.SUCCESS:
        return {"status": "success", "path": values.index(1)}
    return {"status": values.index(0).value_nick, "error": PDB.get_last_error()}


def listing():
    d = P["models"]
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


for name in ("truncated", "summed", "notes", "huge"):
    R[name] = install(P[name])
    R[name + "_listing"] = listing()
R["no_file"] = install(None)
R["good"] = install(P["good"])
R["again"] = install(P["good"])
R["overwrite"] = install(P["good"], overwrite=True, make_default=True)
R["listing"] = listing()
image = load(P["photo"])
R["default"] = classify(image)
R["explicit"] = classify(image, model=P["good"])
'''

res = checks.gimp_ran(profile.run_python(SCRIPT, {
    "models": profile.models_dir(), "good": good, "truncated": truncated,
    "summed": summed, "notes": notes, "huge": huge,
    "photo": os.path.join(gt.DATA, "cat.178.jpg")}))

installed = os.path.join(profile.models_dir(), "mine.safetensors")
r = res.get("good", {})
checks.ok(r.get("status") == "success" and r.get("path") == installed,
          f"a valid model is installed and its path returned ({r})")
if os.path.exists(installed):
    with open(installed, "rb") as f:
        checks.ok(hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest(),
                  "the installed file is identical to the source")
for name, words in [("truncated", "truncated.safetensors"),
                    ("summed", "SHA-256"), ("notes", "Not a usable model"),
                    ("huge", "header length")]:
    r = res.get(name, {})
    checks.ok(r.get("status") == "execution-error" and words in (r.get("error") or ""),
              f"{name}: refused, the message says {words!r} ({r})")
    checks.ok(res.get(name + "_listing") == [],
              f"{name}: nothing left in the models folder ({res.get(name + '_listing')})")
r = res.get("no_file", {})
checks.ok(r.get("status") == "execution-error" and "model file" in (r.get("error") or ""),
          f"no file given: refused ({r})")
r = res.get("again", {})
checks.ok(r.get("status") == "execution-error" and "already installed" in (r.get("error") or ""),
          f"the same name again is refused ({r})")
r = res.get("overwrite", {})
checks.ok(r.get("status") == "success", f"... and replaced with overwrite ({r})")
checks.ok(res.get("listing") == ["default", "mine.safetensors"],
          f"the folder holds the model and the default marker ({res.get('listing')})")
d, e = res.get("default", {}), res.get("explicit", {})
checks.ok(d.get("status") == "success" and d.get("dog_probability") == e.get("dog_probability"),
          f"make-default: classify without a model uses it ({d} vs {e})")
checks.done()
