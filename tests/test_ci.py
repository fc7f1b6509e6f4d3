"""CI's own guards: the pinned versions it installs are the ones the README names, and the README's install
commands are the ones CI runs.

The README's "## Install" section has three command blocks: the set-up (a venv, the CPU torch, the package with
the user extra), the main job (the quickstart) and the tests (the ``dev`` extra, then the test command). Here:

* every extra the section names exists in ``pyproject.toml``, and ``dev`` holds every requirement of the user
  extra, so CI (which installs ``dev``) installs what a user's set-up installs;
* every ``pip install`` of the set-up and tests blocks, and the test command, is a command of ``.ci/run`` (up to
  ``python -m``, ``--quiet``, CI's ``-c .ci/constraints.txt`` and the README's ``--index-url`` of the CPU torch,
  which CI takes from the folder its pip is configured with), the user extra's install excepted (``dev`` covers
  it); the Tests section runs the same test command;
* the quickstart runs with the core and the user extra only: every distribution that only ``dev`` brings is
  made unimportable while it runs (``test_user_extra_runs_the_quickstart``);
* every requirement of ``pyproject.toml`` has a row in the README's licence table.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest needs tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PYPROJECT["optional-dependencies"]


def test_readme_names_the_pinned_versions() -> None:
    """The README's "Tested versions" are the versions CI installs (.ci/constraints.txt)."""
    pins = dict(
        line.split("==", 1) for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines() if "==" in line
    )
    block = README[README.index("<!-- versions:start -->") : README.index("<!-- versions:end -->")]
    named = re.findall(r"([a-z][a-z0-9-]*) (\d[\w.]*)", block)
    assert len(named) >= 8
    for name, version in named:
        assert pins.get(name) == version, (name, version, pins.get(name))
    assert "-c .ci/constraints.txt" in CI_RUN and f"torch=={pins['torch']}" in CI_RUN


def section(title: str) -> str:
    """The README's ``## {title}`` section, up to the next ``## `` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def commands(text: str, fence: str = "bash") -> list[list[str]]:
    """The commands of the fenced ``bash`` blocks of ``text`` (or of a shell script when ``fence`` is None), split
    as a shell would: comments dropped, ``&&`` separating two commands."""
    blocks = re.findall(rf"^```{fence}\n(.*?)^```", text, flags=re.M | re.S) if fence else [text]
    found = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while "&&" in words:
                cut = words.index("&&")
                found.append(words[:cut])
                words = words[cut + 1 :]
            if words:
                found.append(words)
    return found


def install_blocks() -> list[list[list[str]]]:
    """The Install section's bash blocks, each as its commands: set-up, main job, tests."""
    blocks = re.findall(r"^```bash\n(.*?)^```", section("Install"), flags=re.M | re.S)
    return [commands(f"```bash\n{block}```") for block in blocks]


def normalised(words: list[str]) -> list[str]:
    """A pip command without what only says how quietly or from where: ``python -m`` before ``pip``, ``--quiet``,
    ``-c FILE`` and ``--index-url URL``."""
    if words[:3] == ["python", "-m", "pip"]:
        words = words[2:]
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in {"-c", "--index-url"}:
            skip = True
        elif word not in {"--quiet", "-q"}:
            out.append(word)
    return out


def user_extra() -> str:
    """The extra the README's set-up installs (``pip install -e ".[X]"``)."""
    setup = install_blocks()[0]
    extras = [m.group(1) for words in setup for m in [re.fullmatch(r"\.\[(\w+)\]", words[-1])] if m]
    assert len(extras) == 1 and extras[0] != "dev", setup
    return extras[0]


def test_readme_install_blocks_are_setup_main_job_and_tests() -> None:
    setup, main_job, tests = install_blocks()
    assert ["python3", "-m", "venv", ".venv"] in setup and [".", ".venv/bin/activate"] in setup
    torch = [words for words in setup if words[:3] == ["pip", "install", "torch==2.13.0"]]
    assert torch == [["pip", "install", "torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"]]
    assert ["pip", "install", "-e", f".[{user_extra()}]"] in setup and len(setup) == 4
    assert main_job == [["python", "examples/quickstart.py"]]
    assert tests == [
        ["pip", "install", "-e", ".[dev]"],
        ["python", "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile"],
    ]
    assert commands(section("Tests")) == [tests[-1]]  # the Tests section runs the same command


def test_readme_extras_exist_and_dev_covers_the_user_extra() -> None:
    named = set(re.findall(r"(?:\.|lightning-topo|`)\[(\w+)\]", section("Install")))
    assert {user_extra(), "dev", "wandb", "plot", "pandas"} <= named
    assert named <= set(EXTRAS), named - set(EXTRAS)
    dev = {canonicalize_name(Requirement(r).name) for r in EXTRAS["dev"]}
    for extra, requirements in EXTRAS.items():
        missing = {canonicalize_name(Requirement(r).name) for r in requirements} - dev
        assert not missing, f"[{extra}] needs {missing}, which CI's [dev] does not install"


def test_ci_runs_the_readme_commands() -> None:
    """Every README install and test command is one CI runs (up to how quietly and from where pip installs)."""
    ci = [normalised(words) for words in commands(CI_RUN, fence=None)]
    setup, _, tests = install_blocks()
    for words in [*setup, *tests]:
        if words == ["pip", "install", "-e", f".[{user_extra()}]"]:
            continue  # CI installs [dev], which holds every requirement of the user extra (test above)
        expected = ["python3", "-m", "venv", ".venv"] if words[:3] == ["python3", "-m", "venv"] else normalised(words)
        assert expected in ci, f"the README command {shlex.join(words)!r} is not one .ci/run runs"


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions that ``requirements`` pull in (with their extras), canonical names."""
    todo = [(Requirement(text).name, {"", *Requirement(text).extras}) for text in requirements]
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    while todo:
        name, extras = todo.pop()
        name = canonicalize_name(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not for this platform or Python (a marker left it out)
        names.add(name)
        for extra in extras - {e for n, e in seen if n == name}:
            seen.add((name, extra))
            for text in dist.requires or []:
                dep = Requirement(text)
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append((dep.name, {"", *dep.extras}))
    return names


BLOCKER = """
import re, runpy, sys
MODULES, DISTS = (set(arg.split(",")) for arg in sys.argv[1:3])
class Hide:  # wraps each import finder: the blocked modules and distributions are not found, as if not installed
    def __init__(self, inner):
        self.inner = inner
    def __getattr__(self, name):
        return getattr(self.inner, name)
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in MODULES:
            return None
        return self.inner.find_spec(name, path, target)
    def find_distributions(self, *args, **kwargs):
        for dist in getattr(self.inner, "find_distributions", lambda *a, **k: [])(*args, **kwargs):
            if re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower() not in DISTS:
                yield dist
sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
sys.path.insert(0, sys.argv[3])
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0] + "/quickstart.py", run_name="__main__")
"""


def test_user_extra_runs_the_quickstart(tmp_path: Path) -> None:
    """``python examples/quickstart.py`` (quick) with only the core and the README's user extra importable."""
    allowed = _closure([*PYPROJECT["dependencies"], *EXTRAS[user_extra()]]) | {"pip", "setuptools", "wheel"}
    dev_only = _closure(EXTRAS["dev"]) - allowed
    assert {"gudhi", "tensorboard", "wandb", "transformers"} <= dev_only
    blocked = sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if module.isidentifier() and {canonicalize_name(d) for d in dists} <= dev_only
    )
    assert {"gudhi", "tensorboard", "wandb", "transformers", "pandas", "pytest"} <= set(blocked)
    out = tmp_path / "quickstart"
    args = [str(ROOT / "examples"), "--quick", "--threads", "1", "--out", str(out)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(blocked), ",".join(sorted(dev_only)), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "decay_rate" in proc.stdout and (out / "metrics.csv").is_file() and (out / "history.json").is_file()
    assert sorted(p.name for p in out.rglob("*.png")) == ["betti_vs_depth.png", "decay.png", "omega_history.png"]


def test_every_requirement_has_a_licence_row() -> None:
    """The README's licence table names every distribution pyproject.toml requires, in any extra."""
    table = section("Install")[section("Install").index("### Licences") :]
    rows = {canonicalize_name(m) for m in re.findall(r"^\| `([\w.-]+)` \|", table, flags=re.M)}
    required = {
        canonicalize_name(Requirement(text).name)
        for text in [*PYPROJECT["dependencies"], *(r for reqs in EXTRAS.values() for r in reqs)]
    }
    assert required <= rows, required - rows
