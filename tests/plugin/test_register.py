#!/usr/bin/env python3
"""The procedure is registered as the scripting interface promises: name,
menu path and label, image types, argument and return value names, types
and defaults; the menu label is translatable; meson installs the plug-in
as plug-ins/catdog/catdog with its model next to it."""
import json
import os
import subprocess

import gimptest as gt

gt.require_gimp()
checks = gt.Checks()
profile = gt.Profile("register")

SCRIPT = r'''
proc = PDB.lookup_procedure("plug-in-catdog-classify")
R["found"] = proc is not None
R["menu_label"] = proc.get_menu_label()
R["menu_paths"] = list(proc.get_menu_paths())
R["image_types"] = proc.get_image_types()
R["blurb"] = proc.get_blurb()
R["args"] = {}
for spec in proc.get_arguments():
    entry = {"type": spec.value_type.name}
    if spec.value_type.name == "gint":
        entry["range"] = [spec.minimum, spec.maximum]
    default = spec.get_default_value()
    if isinstance(default, (bool, int, float, str)) or default is None:
        entry["default"] = default
    if "Choice" in spec.__gtype__.name:
        entry["choices"] = list(Gimp.param_spec_choice_get_choice(spec).list_nicks())
    R["args"][spec.get_name()] = entry
R["arg_order"] = [spec.get_name() for spec in proc.get_arguments()]
R["returns"] = {spec.get_name(): spec.value_type.name for spec in proc.get_return_values()}
'''

res = checks.gimp_ran(profile.run_python(SCRIPT, {}))
checks.ok(res.get("found"), "plug-in-catdog-classify is in the PDB")
checks.ok(res.get("menu_label") == "Cat or _Dog...",
          f"menu label 'Cat or _Dog...' ({res.get('menu_label')!r})")
checks.ok(res.get("menu_paths") == ["<Image>/Filters/Classify"],
          f"menu path <Image>/Filters/Classify ({res.get('menu_paths')!r})")
types = res.get("image_types", "")
checks.ok(all(t in types for t in ("RGB*", "GRAY*", "INDEXED*")),
          f"RGB, gray and indexed images with or without alpha ({types!r})")

args = res.get("args", {})
want_args = {
    "model": ("GFile", None),
    "feature-maps": ("gboolean", False),
    "layers": ("gchararray", "all"),
    "maps-style": ("gchararray", "mosaic"),
    "colormap": ("gchararray", "gray"),
    "heatmap": ("gboolean", False),
    # Unset, not "": GIMP reads an empty default back from its pluginrc
    # as unset, so only this reads the same before and after a restart.
    "heatmap-layer": ("gchararray", None),
    "top": ("gint", 0),
    # Unset, like heatmap-layer.
    "channels": ("gchararray", None),
    "tta": ("gboolean", False),
}
for name, (gtype, default) in want_args.items():
    got = args.get(name, {})
    checks.ok(got.get("type") == gtype and got.get("default") == default,
              f"argument {name}: {gtype}, default {default!r} ({got})")
checks.ok(args.get("top", {}).get("range", [None])[0] == 0,
          f"top: 0 or more ({args.get('top')})")
checks.ok(args.get("maps-style", {}).get("choices") == ["mosaic", "channels"],
          f"maps-style choices mosaic, channels ({args.get('maps-style')})")
checks.ok(args.get("colormap", {}).get("choices") == ["gray", "viridis"],
          f"colormap choices gray, viridis ({args.get('colormap')})")
order = res.get("arg_order", [])
checks.ok(order[:3] == ["run-mode", "image", "drawables"],
          f"an image procedure: run-mode, image, drawables first ({order})")
# Arguments are only ever appended: calls giving them by position keep
# working.
checks.ok(order[3:] == ["model", "feature-maps", "layers", "maps-style", "colormap",
                        "heatmap", "heatmap-layer", "top", "channels", "tta"],
          f"arguments in their historical order, new ones last ({order[3:]})")
checks.ok(res.get("returns") == {"label": "gchararray", "probability": "gdouble",
                                 "dog-probability": "gdouble"},
          f"return values label, probability, dog-probability ({res.get('returns')})")

# Translatable: the menu label is marked for gettext in the sources listed
# in po/POTFILES.
with open(os.path.join(gt.SRC, "po", "POTFILES")) as f:
    sources = [os.path.join(gt.SRC, line.strip()) for line in f if line.strip()]
pot = profile.path("catdog.pot")
xgettext = subprocess.run(["xgettext", "--keyword=_", "--keyword=N_", "--from-code=UTF-8",
                           "-o", pot] + sources, stderr=subprocess.PIPE, text=True)
pot_text = open(pot).read() if xgettext.returncode == 0 else xgettext.stderr
checks.ok('msgid "Cat or _Dog..."' in pot_text, "the menu label is in the message catalog")

# Installed layout, from meson's own plan.
build = os.environ["CATDOG_BUILD_ROOT"]
plan = subprocess.run(["meson", "introspect", "--installed", build],
                      stdout=subprocess.PIPE, text=True)
installed = json.loads(plan.stdout or "{}")
binary = [dst for src, dst in installed.items() if src == gt.PLUGIN]
checks.ok(len(binary) == 1 and binary[0].endswith("/plug-ins/catdog/catdog"),
          f"the plug-in installs as plug-ins/catdog/catdog ({binary})")
if binary:
    folder = os.path.dirname(binary[0])
    model = [dst for dst in installed.values()
             if dst == os.path.join(folder, "catdog.safetensors")]
    checks.ok(len(model) == 1, "the default model installs next to the plug-in")

if gt.EXTENSION:
    # Laid out as the Flatpak extension: GIMP ran the plug-in from the
    # staged prefix, and the loader took the bundled libraries from its
    # lib/ (add-ld-path), not the system's.
    plugin = os.path.join(profile.plugin_dir, "catdog")
    pluginrc = os.path.join(profile.profile, "pluginrc")
    text = open(pluginrc, errors="replace").read() if os.path.exists(pluginrc) else ""
    checks.ok(f'"{plugin}"' in text, f"GIMP registered the staged plug-in {plugin}")
    libs = gt.linked_libs(plugin, profile.env())
    for soname in gt.BUNDLED_LIBS:
        want = os.path.join(profile.stage, "lib", soname)
        checks.ok(libs.get(soname) == want,
                  f"{soname} loads from the extension's lib/ ({libs.get(soname)})")

checks.done()
