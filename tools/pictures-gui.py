#!/usr/bin/env python3
"""The GIMP half of tools/pictures (run by it, on a virtual display):
docs/dialog.png and docs/layers.png from one interactive run.

GIMP's GUI starts in a private profile with the built plug-in
(tests/plugin/gimptest.py installs it there, as for the tests), in
multi-window mode so that the Layers dock is a window of its own.  A
script inside GIMP opens tests/data/dog.701.jpg in a display and runs
plug-in-catdog-classify interactively; the keyboard turns feature maps
on, unchecks conv2, picks one layer per channel with the top 2 channels
and turns the heat map on (the keys of tests/plugin/test_dialog.py), and
runs it.  The dialog with its verdict is the first screenshot; after
Close, the script expands the new layer groups and waits while the
Layers dock is photographed."""
import json
import os
import shutil
import subprocess
import sys
import time

SRC = os.environ["CATDOG_SOURCE_ROOT"]
OUT = os.environ["CATDOG_PICTURES"]
sys.path.insert(0, os.path.join(SRC, "tests", "plugin"))
import gimptest as gt  # noqa: E402

GIMP = shutil.which("gimp-3")
WAIT = 120
# The main window's size and its right dock's width, in pixels.
WINDOW = (1400, 800)
DOCK_WIDTH = 440
# What layers.png leaves out of the dock's column: the pane handle on its
# left, the menu bar above.
CROP_LEFT, CROP_TOP = 8, 30
SESSIONRC = f"""(session-info "toplevel"
    (factory-entry "gimp-single-image-window")
    (position 0 0)
    (size {WINDOW[0]} {WINDOW[1]})
    (open-on-exit)
    (aux-info
        (left-docks-width "188")
        (right-docks-width "{DOCK_WIDTH}")
        (maximized "no"))
    (gimp-toolbox
        (side left)
        (book
            (current-page 0)
            (dockable "gimp-tool-options"
                (tab-style automatic))))
    (gimp-dock
        (side right)
        (book
            (current-page 0)
            (dockable "gimp-layer-list"
                (tab-style automatic)
                (preview-size 32)
                (aux-info
                    (show-button-bar "true"))))))
(hide-docks no)
"""

# GIMP's side: open, run interactively, expand the groups, hold still.
SCRIPT = r'''
import time
image = load(P["photo"])
photo = image.get_layers()[0]
Gimp.Display.new(image)
proc = PDB.lookup_procedure("plug-in-catdog-classify")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", [photo])
R["status"] = proc.run(config).index(0).value_nick


def expand(items):
    for it in items:
        if it.is_group():
            it.set_expanded(True)
            expand(it.get_children())


expand(image.get_layers())
image.set_selected_layers([image.get_layers()[0]])
Gimp.displays_flush()
R["tree"] = layer_tree(image.get_layers())
open(P["ready"], "w").close()
deadline = time.time() + P["wait"]
while not os.path.exists(P["done"]) and time.time() < deadline:
    time.sleep(0.2)
'''


def xdo(*args):
    return subprocess.run(["xdotool"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30).stdout


def find_window(title, proc, timeout=WAIT):
    """The last visible window whose title matches the regular expression
    title (xdotool ignores case)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = xdo("search", "--onlyvisible", "--name", title).split()
        if found:
            return found[-1]
        time.sleep(0.3)
    return None


def keys(win, *names):
    xdo("windowfocus", "--sync", win)
    for name in names:
        xdo("key", "--clearmodifiers", name)
        time.sleep(0.4)


def shot(win, path):
    subprocess.run(["import", "-window", win, path], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_file(path, proc, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(path):
            return True
        time.sleep(0.3)
    return os.path.exists(path)


def main():
    if not GIMP:
        sys.exit("pictures: gimp-3 is not installed")
    profile = gt.Profile("gui")
    shutil.rmtree(os.path.join(profile.profile, "plug-in-settings"), ignore_errors=True)
    # One big window whose right dock holds only the Layers dialog, wide
    # enough for the layer names; no tips.
    with open(os.path.join(profile.profile, "gimprc"), "w") as f:
        f.write("(show-welcome-dialog no)\n(show-tips no)\n")
    with open(os.path.join(profile.profile, "sessionrc"), "w") as f:
        f.write(SESSIONRC)
    params = {"photo": os.path.join(gt.DATA, "dog.701.jpg"), "wait": WAIT,
              "ready": profile.path("ready"), "done": profile.path("done"),
              "result": profile.path("result.json")}
    code = profile.write_script(SCRIPT, params)
    env = profile.env()
    env.update({"DISPLAY": os.environ["DISPLAY"], "LANG": "en_US.UTF-8"})
    env.pop("LANGUAGE", None)
    proc = subprocess.Popen(["timeout", "-k", "10", str(3 * WAIT), GIMP, "--no-splash",
                             "--batch-interpreter=python-fu-eval", "-b", code, "--quit"],
                            cwd=profile.files, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    raw = {}
    try:
        win = find_window("^Cat or Dog$", proc)
        if not win:
            raise RuntimeError("the dialog did not open")
        time.sleep(1.5)
        keys(win, "alt+f", "alt+l", "Home", "Down", "Return", "alt+t", "Down",
             "alt+p", "ctrl+a", "2", "Tab", "alt+g", "alt+o")
        if find_window(r"^Cat or Dog: (cat|dog) \(", proc, timeout=60) != win:
            raise RuntimeError("the dialog shows no result")
        time.sleep(1.0)
        raw["dialog"] = profile.path("dialog.png")
        shot(win, raw["dialog"])
        keys(win, "Return")
        if not wait_file(params["ready"], proc):
            raise RuntimeError("GIMP's script did not get past the run")
        time.sleep(2.0)
        if os.environ.get("CATDOG_PICTURES_DEBUG"):
            print(xdo("search", "--onlyvisible", "--name", "."))
            for w in xdo("search", "--onlyvisible", "--name", ".").split():
                print(w, xdo("getwindowname", w).strip(), xdo("getwindowgeometry", w))
            shot("root", profile.path("screen.png"))
        main_win = find_window(r"– GIMP$", proc)
        if not main_win:
            raise RuntimeError("no GIMP image window")
        raw["window"] = profile.path("window.png")
        shot(main_win, raw["window"])
    finally:
        open(params["done"], "w").close()
        try:
            out, _ = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    res = {}
    if os.path.exists(params["result"]):
        with open(params["result"]) as f:
            res = json.load(f)
    if res.get("status") != "success" or len(raw) != 2:
        print(out)
        sys.exit(f"pictures: the GIMP run failed ({res.get('status')}, "
                 f"{res.get('exception', '')})")
    shutil.copy(raw["dialog"], os.path.join(OUT, "dialog.png"))
    # The right dock: the window's last DOCK_WIDTH columns, below the menu
    # bar.
    size = subprocess.run(["identify", "-format", "%w %h", raw["window"]], check=True,
                          stdout=subprocess.PIPE, text=True, timeout=60).stdout.split()
    width, height = int(size[0]), int(size[1])
    left, top = width - DOCK_WIDTH + CROP_LEFT, CROP_TOP
    subprocess.run(["convert", raw["window"], "-crop",
                    f"{width - left}x{height - top}+{left}+{top}", "+repage",
                    "-strip", os.path.join(OUT, "layers.png")], check=True, timeout=60)


main()
