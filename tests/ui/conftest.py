"""The web view under test: a real sweep recorded in a real repository, `gitexp ui` as a
real process, and Debian's headless Chromium driven through its own chromedriver.

The sweep, the server and the browser are made once per test process (recording nine runs
and starting a server or a browser are the slow parts); every test only reads, as the view
itself does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from ..conftest import git, gitexp_process, run_ids, sealed

LRS, SEEDS = (0.01, 0.05, 0.2), (1, 2, 3)
# loss falls at a rate set by lr; each seed adds its own noise.
TRAIN = """\
import argparse, random
import gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--steps", type=int, default=30)
args = parser.parse_args()
with gitexp.init(config=vars(args), tags=["sweep"]) as run:
    rng, loss = random.Random(), 2.0
    for step in range(args.steps):
        loss = loss * (1 - args.lr) + 0.05 * rng.random()
        run.log({"loss": loss, "acc": 1 - loss / 3}, step=step)
    print(f"lr {args.lr}: loss {loss:.4f}")
"""
_ADDRESS = re.compile(r"http://127\.0\.0\.1:(\d+)/([A-Za-z0-9_-]+)/$")
SCREENSHOTS = Path(os.environ.get("GITEXP_SCREENSHOTS")
                   or Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots")


@dataclass(frozen=True)
class Sweep:
    root: Path
    ids: dict[tuple[float, int], str]  # (lr, seed) → run id


def record_sweep(root: Path, runs: Sequence[tuple[str, ...]],
                 scripts: Mapping[str, str] = MappingProxyType({})) -> list[str]:  # fmt: skip
    """A repository holding train.py (and `scripts`, by name), and on its runs branch one run
    of each `gitexp run` argument list in `runs`, made from an uncommitted edit (each run has
    a code diff)."""
    root.mkdir(parents=True)
    for name, text in {"train.py": TRAIN, **scripts}.items():
        (root / name).write_text(text)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a sweep")
    with (root / "train.py").open("a") as f:
        f.write("# tried with 30 steps\n")
    for args in runs:
        done = gitexp_process(["run", *args], root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
        _, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
    return run_ids(root)


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch, sealed(tmp_path_factory.mktemp("home"), patch):
        yield tmp_path_factory.mktemp("work")


def once(factory: pytest.TempPathFactory, worker: str, name: str,
         make: Callable[[Path], object]) -> Path:  # fmt: skip
    """The folder `name`, made by `make` once per test session: under pytest-xdist by the
    first worker to need it, in the folder the session's workers share, the others waiting
    for it (each worker only reads it)."""
    from filelock import FileLock

    top = factory.getbasetemp()
    top = top if worker == "master" else top.parent
    with FileLock(str(top / f"{name}.lock")):
        if not (top / f"{name}.made").exists():
            shutil.rmtree(top / name, ignore_errors=True)
            make(top / name)
            (top / f"{name}.made").touch()
    return top / name


@pytest.fixture(scope="session")
def sweep(ui_home: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Sweep:
    """Three learning rates by three seeds, each a `gitexp run` of train.py."""
    pairs = [(lr, seed) for lr in LRS for seed in SEEDS]
    runs = [("--name", f"lr{lr}", "--seed", str(seed), "--", sys.executable, "train.py",
             "--lr", str(lr)) for lr, seed in pairs]  # fmt: skip
    root = once(tmp_path_factory, worker_id, "sweep", lambda at: record_sweep(at, runs))
    ids = run_ids(root)[::-1]  # oldest first: as they ran
    return Sweep(root, dict(zip(pairs, ids, strict=True)))


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    token: str
    said: str

    @property
    def base(self) -> str:
        """The address printed, less its final slash: the pages are below it."""
        return f"http://127.0.0.1:{self.port}/{self.token}"

    @property
    def address(self) -> str:
        return f"{self.base}/"

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a user stops it: its exit status and what it said after the address."""
        self.process.send_signal(signal.SIGINT)
        _, rest = self.process.communicate(timeout=60)
        return self.process.returncode, rest


def start_server(root: Path, *args: str) -> Server:
    """`gitexp ui` in `root`, once it has printed its address (it listens before it does)."""
    process = gitexp_process(["ui", "--port", "0", *args], root, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)  # fmt: skip
    assert process.stderr is not None
    said = ""
    for line in process.stderr:
        said += line
        found = _ADDRESS.search(line)
        if found:
            return Server(process, int(found[1]), found[2], said)
    process.wait(timeout=60)
    raise AssertionError(f"gitexp ui printed no address: {said}")


@pytest.fixture(scope="session")
def server(sweep: Sweep) -> Iterator[Server]:
    running = start_server(sweep.root)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


# --- the browser --------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is not installed: `make browser` installs Debian's chromium and "
    "chromium-driver (CI does)",
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium, its console and network events logged for the tests to read."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> Path:
    """Keep what the page looked like, as a test artifact (GITEXP_SCREENSHOTS, else
    .artifacts/screenshots/ in the checkout)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height), 600), 6000))
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    driver.set_window_size(1400, 1000)
    return path


def requests_made(driver: Any) -> list[str]:
    """The URLs the page asked for since the last call (Chromium's network log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
