"""Screenshots of TensorBoard showing what ``TopologyCallback`` logs, taken with headless Chromium.

Trains the digits CNN for a few epochs with ``TopologyCallback`` and a ``TensorBoardLogger`` into a temporary
directory, serves it with TensorBoard on a free local port, and has Debian's ``chromium`` screenshot a few
dashboards into ``docs/screenshots/`` (stable names), with ``provenance.json`` beside them. TensorBoard,
Chromium and the temporary directory are cleaned up also on failure or Ctrl-C.

Usage (from the repository root, with the venv active; needs ``apt-get install -y chromium``)::

    python docs/screenshots/make_screenshots.py [--epochs 8] [--out docs/screenshots]

How a screenshot is taken: TensorBoard is a single-page app that fetches its data after the first paint, so a
screenshot at ``load`` shows a spinner or empty axes. The script drives Chromium over the DevTools protocol
(``--remote-debugging-pipe``: no extra Python package) and, per dashboard, polls the page (through shadow
roots) until the charts have drawn their lines or the images have decoded and the page has stopped changing
for a second, then captures the viewport. It fails, naming what was missing, if that does not happen in time.

Chromium's one-shot ``--screenshot --virtual-time-budget`` is not enough for TensorBoard 2.21: with
``--disable-gpu`` the time-series charts (WebGL in a worker) show axes without lines, and TensorBoard's
defaults (settings pane open, smoothing 0.6, outliers clipped) can only be changed through ``localStorage``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import fcntl
import importlib.metadata
import json
import os
import platform
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RELOAD_S = 2  # TensorBoard's --reload_interval

# TensorBoard's own settings, as its front end keeps them in localStorage (TensorBoard 2.21): the Angular
# time-series dashboard reads the JSON under "_tb_global_settings"; the legacy Polymer dashboards (custom
# scalars, images) read single keys. Unknown keys are ignored, so a newer TensorBoard falls back to defaults.
TB_LOCAL_STORAGE = {
    "_tb_global_settings": json.dumps(
        {
            "theme": "light",
            "ignoreOutliers": False,  # the default clips the first epochs' points off the y axis
            "scalarSmoothing": 0,  # one point per epoch: nothing to smooth
            "autoReload": False,
            "timeSeriesSettingsPaneOpened": False,  # the pane takes a fifth of the width
            "stepSelectorEnabled": False,  # no dotted "step 343" line and step chip on every chart
        }
    ),
    "_ignoreYOutliers": "false",
}

# JavaScript helpers run in the page: deep queries through shadow roots (the legacy dashboards are Polymer).
JS_HELPERS = """
const q = (sel) => {
  const out = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.matches(sel)) out.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return out;
};
const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
"""

# A signature of the page that changes while it is still loading or drawing.
JS_SIGNATURE = """
const els = q('*');
return [els.length,
        q('path').reduce((n, p) => n + (p.getAttribute('d') || '').length, 0),
        q('img').filter(i => i.complete).length,
        document.body ? document.body.innerText.length : 0].join(',');
"""


@dataclasses.dataclass(frozen=True)
class Shot:
    """One screenshot: the URL (query and fragment), when the page is ready, and what to do before."""

    name: str
    query: dict[str, str]
    fragment: str
    ready_js: str  # returns [ready: bool, what it found: str]
    prepare_js: str = ""  # run once the page is ready; the page is then waited on again
    plugin: str = ""  # TensorBoard plugin that must be active for ready_js to be able to succeed
    width: int = 1400  # viewport, CSS pixels (device scale factor 1)
    height: int = 900

    def size(self, args: argparse.Namespace) -> tuple[int, int]:
        return args.width or self.width, args.height or self.height


SHOTS = (
    Shot(
        "tensorboard_custom_scalars",
        {"darkMode": "false"},
        # The legacy dashboards keep their state in the fragment: "<plugin>&key=value".
        "custom_scalars&_smoothingWeight=0",
        """
        const charts = q('vz-line-chart2').filter(visible);
        const withLines = charts.filter(c => Array.from((c.shadowRoot || c).querySelectorAll('path'))
          .some(p => (p.getAttribute('d') || '').length > 20));
        return [charts.length > 0 && withLines.length === charts.length,
                `${withLines.length}/${charts.length} visible charts drawn`];
        """,
        plugin="custom_scalars",
        width=1120,
        height=1065,
    ),
    Shot(
        "tensorboard_images",
        {"darkMode": "false"},
        "images",
        """
        const loaders = q('tf-image-loader');
        const imgs = q('img').filter(i => (i.src || '').includes('/images/individualImage'));
        const done = imgs.filter(i => i.complete && i.naturalWidth > 0);
        return [loaders.length > 0 && done.length >= loaders.length,
                `${done.length}/${loaders.length} images decoded`];
        """,
        # "Show actual image size": the figures are drawn for ~700 px; the default halves them.
        prepare_js="""
        const box = q('paper-checkbox').find(c => c.textContent.includes('actual image size'));
        if (box && !box.checked) box.click();
        return !!box;
        """,
        plugin="images",
        width=1120,
        height=1190,
    ),
    Shot(
        "tensorboard_timeseries",
        # The Angular time-series dashboard reads these from the query string (not the fragment);
        # forceSVG draws lines as SVG, which headless Chromium without a GPU renders (WebGL does not).
        {"darkMode": "false", "forceSVG": "true", "smoothing": "0", "tagFilter": "/omega$"},
        "timeseries",
        """
        const cards = q('scalar-card').filter(visible);
        const withLines = cards.filter(c => Array.from(c.querySelectorAll('line-chart .series-view svg path'))
          .some(p => (p.getAttribute('d') || '').length > 20));
        return [cards.length > 0 && withLines.length === cards.length,
                `${withLines.length}/${cards.length} visible scalar cards drawn`];
        """,
        plugin="scalars",
        width=1400,
        height=1160,
    ),
)
SHOT_NAMES = [s.name for s in SHOTS]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default: 8)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs and provenance.json")
    parser.add_argument("--width", type=int, help="viewport width in CSS pixels for all (default: each page's own)")
    parser.add_argument("--height", type=int, help="viewport height in CSS pixels for all (default: each page's own)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each page (default: 60)")
    parser.add_argument("--chromium", default="chromium", help="the Chromium binary (default: chromium)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (default: 1)")
    parser.add_argument("--only", nargs="+", choices=SHOT_NAMES, help="take only these (no provenance.json)")
    parser.add_argument("--logdir", type=Path, help="screenshot these existing TensorBoard logs; no training")
    parser.add_argument("--keep-logs", type=Path, help="also copy the TensorBoard log directory here")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


# ---------------------------------------------------------------------------------------------------- training
def train(logdir: Path, epochs: int, threads: int) -> None:
    """Fit ``Classifier(digits_cnn())`` on the digits with ``TopologyCallback`` and a ``TensorBoardLogger``."""
    import warnings

    import torch
    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.loggers import TensorBoardLogger

    from lightning_topo import TopologyCallback
    from lightning_topo.datasets import DigitsDataModule
    from lightning_topo.models import Classifier, digits_cnn

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    seed_everything(0, verbose=False)
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=TensorBoardLogger(str(logdir), name="digits_cnn", version="topology"),
        callbacks=[TopologyCallback()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule(batch_size=32))


# ---------------------------------------------------------------------------------------------------- processes
def stop(proc: Any, name: str) -> None:
    """SIGTERM the process's group (it was started in its own session), then SIGKILL after 5 s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop on SIGTERM; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------------------- tensorboard
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def start_tensorboard(logdir: Path, port: int, log_file: Any) -> subprocess.Popen:
    # Run from the log directory's parent with a relative --logdir: TensorBoard's sidebar shows the path as
    # given, so the screenshots show "lightning_logs", not a random temporary path.
    cmd = [
        sys.executable, "-m", "tensorboard.main",
        "--logdir", logdir.name, "--host", "127.0.0.1", "--port", str(port), "--reload_interval", str(RELOAD_S),
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=logdir.parent, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)


def data_signature(base: str) -> dict[str, Any]:
    """What TensorBoard serves now: per run and tag, the number of points and the last step."""
    quote = urllib.parse.quote
    signature: dict[str, Any] = {"scalars": {}, "images": {}}
    for run, tags in get_json(f"{base}/data/plugin/scalars/tags").items():
        for tag in tags:
            points = get_json(f"{base}/data/plugin/scalars/scalars?run={quote(run)}&tag={quote(tag)}")
            signature["scalars"][f"{run}/{tag}"] = [len(points), points[-1][1] if points else None]
    for run, tags in get_json(f"{base}/data/plugin/images/tags").items():
        for tag in tags:
            images = get_json(f"{base}/data/plugin/images/images?run={quote(run)}&tag={quote(tag)}")
            signature["images"][f"{run}/{tag}"] = [len(images), images[-1]["step"] if images else None]
    return signature


def wait_for_data(base: str, proc: subprocess.Popen, timeout: float = 120.0) -> dict[str, Any]:
    """Poll until TensorBoard answers HTTP, serves scalars and images, and has stopped loading new points
    (the same answer over more than one reload interval); return its active plugins and tags."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"TensorBoard exited with code {proc.returncode} before serving")
        try:
            signature = data_signature(base)
            if signature != last:
                last, since = signature, time.monotonic()
            elif signature["scalars"] and signature["images"] and time.monotonic() - since > RELOAD_S + 1:
                plugins = get_json(f"{base}/data/plugins_listing")
                return {
                    "active_plugins": sorted(k for k, v in plugins.items() if v.get("enabled")),
                    "scalars": sorted(signature["scalars"]),
                    "images": sorted(signature["images"]),
                }
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as err:
            last_error = err
        time.sleep(0.5)
    raise TimeoutError(f"TensorBoard at {base} served no stable scalars and images in {timeout:.0f} s: {last_error}")


# ---------------------------------------------------------------------------------------------------- chromium
def chromium_version(binary: str) -> str:
    # Debian's /usr/bin/chromium wrapper may print shell noise on stderr (its /dev/shm check); keep stdout.
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


class Spawned:
    """The little of ``subprocess.Popen`` that :func:`stop` needs, for a child from ``os.posix_spawn``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4 of the child)."""

    def __init__(self, binary: str, profile: Path, width: int, height: int, log_file: Any) -> None:
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--mute-audio",
            "--lang=en-US",
            "--force-device-scale-factor=1",
            "--remote-debugging-pipe",  # the protocol on the child's fds 3 (commands) and 4 (answers)
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()
        # posix_spawn places the pipe ends at 3 and 4 without running Python in the child (a forked copy of
        # this multi-threaded process, torch's pools included, must not). From high fds first, so that
        # neither dup2 can overwrite the other's source.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child_r, from_child_w, log_file.fileno())]
        for fd in (to_child_r, from_child_w):
            os.close(fd)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, high[2], 1),
            (os.POSIX_SPAWN_DUP2, high[2], 2),
            (os.POSIX_SPAWN_DUP2, high[0], 3),
            (os.POSIX_SPAWN_DUP2, high[1], 4),
        ]
        try:
            self.proc = Spawned(os.posix_spawn(binary, cmd, os.environ, file_actions=actions, setsid=True))
        finally:
            for fd in high:
                os.close(fd)
        os.set_blocking(self._r, True)
        self._buf = b""
        self._id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _message(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer from chromium over the DevTools pipe")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the DevTools pipe (exit code {self.proc.poll()})")
            self._buf += chunk
        message, self._buf = self._buf.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        while True:  # events (no "id") are not needed: everything is polled
            answer = self._message(timeout)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"DevTools {method}: {answer['error']}")
                return answer.get("result", {})

    def page(self, method: str, params: dict | None = None, timeout: float = 30) -> dict[str, Any]:
        return self.call(method, params, self.session, timeout)

    def js(self, body: str) -> Any:
        """Run ``body`` (a function body with ``return``) in the page, with the helpers; its value."""
        expression = f"(() => {{ {JS_HELPERS}\n{body} }})()"
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('exception', result)}")
        return result["result"].get("value")

    def open(self, url: str, width: int, height: int) -> None:
        self.page("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                          "mobile": False})  # fmt: skip
        self.page("Page.navigate", {"url": "about:blank"})  # a fragment change alone would not reload the app
        self.page("Page.navigate", {"url": url})

    def settle(self, ready_js: str, timeout: float, quiet_s: float = 1.0, poll_s: float = 0.25) -> str:
        """Wait until ``ready_js`` says ready and the page signature is unchanged for ``quiet_s``."""
        deadline = time.monotonic() + timeout
        found, last, since = "nothing yet", None, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(poll_s)
            if self.js("return document.readyState") != "complete":
                continue
            ready, found = self.js(ready_js) if ready_js else (True, "")
            signature = self.js(JS_SIGNATURE)
            if signature != last:
                last, since = signature, time.monotonic()
            elif ready and time.monotonic() - since >= quiet_s:
                return found
        raise TimeoutError(f"page not ready after {timeout:g} s ({found})")

    def screenshot(self, png: Path) -> None:
        data = self.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        png.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        stop(self.proc, "chromium")
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


def take_screenshots(
    binary: str, base: str, shots: list[Shot], out: Path, profile: Path, args: argparse.Namespace, active: list[str]
) -> dict[str, str]:
    urls: dict[str, str] = {}
    with open(profile.parent / "chromium.log", "w") as log:
        first = shots[0].size(args)
        browser = Browser(binary, profile, *first, log)
        try:
            browser.open(f"{base}/?darkMode=false", *first)  # the origin, for localStorage
            browser.settle("", args.timeout)
            for key, value in TB_LOCAL_STORAGE.items():
                browser.js(f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)}); return true")
            for shot in shots:
                t = time.monotonic()
                url = f"{base}/?{urllib.parse.urlencode(shot.query)}#{shot.fragment}"
                width, height = shot.size(args)
                browser.open(url, width, height)
                ready_js = shot.ready_js
                if shot.plugin and shot.plugin not in active:
                    print(f"  note: TensorBoard plugin {shot.plugin!r} is not active for these logs; "
                          "the page shows TensorBoard's empty state", flush=True)  # fmt: skip
                    ready_js = ""
                found = browser.settle(ready_js, args.timeout)
                if shot.prepare_js and ready_js:
                    if not browser.js(shot.prepare_js):
                        print(f"  note: {shot.name}: the page did not have what prepare_js looks for", flush=True)
                    found = browser.settle(ready_js, args.timeout)
                png = out / f"{shot.name}.png"
                browser.screenshot(png)
                urls[shot.name] = url
                shown = png.relative_to(ROOT) if png.is_relative_to(ROOT) else png
                print(f"  {shown}  {width}x{height}  {found}  ({time.monotonic() - t:.1f} s)", flush=True)
        finally:
            browser.close()
    return urls


# ---------------------------------------------------------------------------------------------------- provenance
def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def provenance(
    args: argparse.Namespace, chromium: str, urls: dict[str, str], data: dict[str, Any], seconds: dict[str, float]
) -> dict[str, Any]:
    dirty = git("status", "--porcelain", "--", "lightning_topo")
    shots = {s.name: s for s in SHOTS}
    return {
        "generated_by": "docs/screenshots/make_screenshots.py (regenerated by the script; do not edit by hand)",
        "command": shlex.join(["python", *sys.argv]),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lightning_topo_commit": git("rev-parse", "HEAD"),
        "lightning_topo_uncommitted_changes": bool(dirty) if dirty is not None else None,
        "versions": {
            "lightning_topo": version_of("lightning-topo"),
            "tensorboard": version_of("tensorboard"),
            "torch": version_of("torch"),
            "lightning": version_of("lightning"),
            "matplotlib": version_of("matplotlib"),
            "chromium": chromium,
            "python": platform.python_version(),
        },
        "training": None
        if args.logdir
        else {
            "model": "Classifier(digits_cnn())",
            "data": "DigitsDataModule(batch_size=32)",
            "callbacks": "TopologyCallback()",
            "logger": "TensorBoardLogger",
            "epochs": args.epochs,
            "seed": 0,
        },
        "screenshots": {
            f"{name}.png": {
                "url": "/" + url.split("/", 3)[3],
                "viewport": list(shots[name].size(args)),
            }
            for name, url in urls.items()
        },
        "tensorboard_settings": json.loads(TB_LOCAL_STORAGE["_tb_global_settings"]),
        "tensorboard_data": data,
        "seconds": seconds,
    }


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    binary = shutil.which(args.chromium)
    if binary is None:
        print(f"{args.chromium!r} not found: apt-get update && apt-get install -y chromium", file=sys.stderr)
        return 2
    chromium = chromium_version(binary)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shots = [s for s in SHOTS if not args.only or s.name in args.only]

    t0 = time.monotonic()
    seconds: dict[str, float] = {}
    tb: subprocess.Popen | None = None
    with tempfile.TemporaryDirectory(prefix="lt_screenshots_") as tmp_name:
        tmp = Path(tmp_name)
        logdir = args.logdir.resolve() if args.logdir else tmp / "lightning_logs"
        try:
            if not args.logdir:
                print(f"training {args.epochs} epochs into {logdir} ...", flush=True)
                train(logdir, args.epochs, args.threads)
                seconds["training"] = round(time.monotonic() - t0, 1)
                if args.keep_logs:
                    shutil.copytree(logdir, args.keep_logs, dirs_exist_ok=True)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            with open(tmp / "tensorboard.log", "w") as tb_log:
                tb = start_tensorboard(logdir, port, tb_log)
                data = wait_for_data(base, tb)
                print(f"TensorBoard {version_of('tensorboard')} at {base}; {chromium}", flush=True)
                t1 = time.monotonic()
                urls = take_screenshots(binary, base, shots, out, tmp / "chromium-profile", args,
                                        data["active_plugins"])  # fmt: skip
                seconds["screenshots"] = round(time.monotonic() - t1, 1)
        except BaseException:
            for log in ("tensorboard.log", "chromium.log"):
                if (tmp / log).exists() and (text := (tmp / log).read_text().strip()):
                    print(f"--- {log} (tail) ---\n{text[-3000:]}", file=sys.stderr)
            raise
        finally:
            stop(tb, "tensorboard")

    seconds["total"] = round(time.monotonic() - t0, 1)
    if not args.only:
        record = provenance(args, chromium, urls, data, seconds)
        (out / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"done in {seconds['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
