"""What a run's Python process really used, observed inside it: standard library only.

Loaded at start-up by gitexp's `sitecustomize` in every Python process of a `gitexp run`
(`start`), and by `gitexp.init` in a script run on its own (`watch`). It observes, whoever
makes the call (the script, a framework, `gitexp.seed_everything`):

- the script's command line as its argparse parser read it, defaults included;
- every seed set: `random.seed`, numpy's legacy `seed` and `default_rng(seed)`,
  `torch.manual_seed`, `torch.cuda.manual_seed(_all)`, and whether an RNG was drawn from
  before it was seeded (a model built before the seed: the seed does not reproduce it);
- the interpreter, its packages and torch, described from inside.

Each process writes what it saw to `<run dir>/observed/<pid>.report`; `gitexp run` picks the
training process among them (see gitexp.observed). Forked children (DataLoader workers)
and multiprocessing's helpers observe nothing: their seeds are not the run's. Nothing here
is imported that the script would not import itself, and nothing is written per step.

Run as a program, it prints `describe()` as JSON: how gitexp asks an interpreter about
itself when no process of the run could say (a command killed before it started).
"""

from __future__ import annotations

import os
import sys

# typing costs a training process ~15 ms at start-up: names for type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import FrameType, ModuleType
    from typing import Any

REPORTS = "observed"  # the folder of a run's reports, one per process
DEPTH = "GITEXP_BOOT_DEPTH"  # how many observed Python processes are above this one
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK")
_MAX_RESEEDS = 1_000_000  # counted, not listed: a seed per epoch is normal

_pid = 0  # the observed process; a fork of it (a DataLoader worker) is not observed
_report: dict[str, Any] = {}
_path: str | None = None
_parsing = 0  # nested parse_known_args calls (subparsers): only the outermost counts
_initial: dict[str, Any] = {}  # RNG states before the first seed, to tell if one was drawn


def _observing() -> bool:
    return _pid == os.getpid()


def _mark(function: Callable[..., Any]) -> Callable[..., Any]:
    """Tag a replacement as ours, so that it is never wrapped twice."""
    function._gitexp = True  # type: ignore[attr-defined]
    return function


def _ours(function: Any) -> bool:
    return getattr(function, "_gitexp", False) is True


# --- what runs after a module is imported ------------------------------------------------


class _AfterImport:  # an import-system finder (the sys.meta_path protocol)
    """Calls a function on a module once it has been imported, whoever imports it."""

    def __init__(self) -> None:
        self.actions: dict[str, list[Callable[[ModuleType], None]]] = {}
        self.busy: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.actions or fullname in self.busy:
            return None
        self.busy.add(fullname)
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self.busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        original = spec.loader.exec_module
        actions = self.actions[fullname]

        def exec_module(module: ModuleType) -> None:
            original(module)
            for action in actions:
                _quietly(action, module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_HOOK = _AfterImport()


def _quietly(action: Callable[[ModuleType], None], module: ModuleType) -> None:
    """Observing must never break the script: a library that changed its API is just not
    observed."""
    try:
        action(module)
    except Exception:
        pass


def after_import(name: str, action: Callable[[ModuleType], None]) -> None:
    """Run `action(module)` once `name` is imported: now, if it already is."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__spec__", None) is not None:
        _quietly(action, module)
        return
    _HOOK.actions.setdefault(name, []).append(action)
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


# --- the command line, as the script's parser read it ----------------------------------------


def _plain(value: Any, depth: int = 0) -> Any:
    """A value YAML can hold and `repr` writes as a literal; anything else as its text (a
    path, an enum, a file; NaN and infinities too, which have no literal)."""
    if isinstance(value, float) and value - value != 0:
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 32:
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(v, depth + 1) for v in items]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _plain(value.item(), depth + 1)  # a numpy or torch scalar
    name = getattr(value, "name", None)
    if hasattr(value, "read") or hasattr(value, "write"):  # argparse.FileType's open file
        return str(name) if name is not None else str(value)
    return str(value)


def _from_command_line(args: Any) -> bool:
    """Whether a parser read this process's command line (not a list made up in code)."""
    if args is None:
        return True
    given = sys.argv[1:]
    words = list(args) if isinstance(args, (list, tuple)) else None
    if words is None:
        return False
    if not words:
        # Nothing left for a second parser, as in a config parser's parse_known_args then
        # the main parser's parse_args(remaining); otherwise, defaults asked for in code.
        return not given or "namespace" in _report
    return all(isinstance(w, str) and w in given for w in words)


def _watch_argparse(module: ModuleType) -> None:
    parser_class = module.ArgumentParser
    original = parser_class.parse_known_args
    if _ours(original):
        return

    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        global _parsing
        _parsing += 1
        try:
            result = original(self, args, namespace)
        finally:
            _parsing -= 1
        if _parsing == 0 and _observing() and _from_command_line(args):
            try:
                parsed = _plain(vars(result[0]))
                _report.setdefault("namespace", {}).update(parsed)
                _save()
            except Exception:
                pass  # never break the script's own parsing
        return result

    parser_class.parse_known_args = _mark(parse_known_args)


# --- seeds, as they were set ---------------------------------------------------------------


def _seed_value(seed: Any) -> Any:
    if seed is None:
        return None  # reseeded from the operating system's entropy: no seed
    if isinstance(seed, bool):
        return str(seed)
    if isinstance(seed, int):
        return seed
    if hasattr(seed, "item") and getattr(seed, "ndim", None) == 0:
        return _seed_value(seed.item())
    return str(seed)[:200]


def _saw_seed(rng: str, seed: Any, drawn: Callable[[], bool] | None = None) -> None:
    """Note that `rng` was seeded with `seed`; the first seed of each RNG is the run's."""
    if not _observing():
        return
    seeds = _report.setdefault("seeds", {})
    value = _seed_value(seed)
    if rng in seeds:
        counts = _report.setdefault("reseeded", {})
        counts[rng] = min(counts.get(rng, 0) + 1, _MAX_RESEEDS)
        if value != seeds[rng]:
            _report.setdefault("later_seeds", {}).setdefault(rng, value)
            _save()
        return
    seeds[rng] = value
    try:
        if drawn is not None and drawn():
            _report.setdefault("drawn_before_seeding", []).append(rng)
    except Exception:
        pass  # telling costs nothing to the script if it cannot be told
    _save()


def _importing() -> bool:
    """Whether a module is being imported: what a library does to an RNG then (rich draws an
    id, scipy seeds generators for its documentation) is not the training's doing."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_IMPORT_DEPTH):
        if frame is None:
            return False
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


_IMPORT_DEPTH = 60
# The global RNG's functions, as the random module exports them.
_DRAWS = ("random", "uniform", "triangular", "randint", "choice", "randrange", "sample",
          "shuffle", "choices", "normalvariate", "lognormvariate", "expovariate",
          "vonmisesvariate", "gammavariate", "gauss", "betavariate", "binomialvariate",
          "paretovariate", "weibullvariate", "getrandbits", "randbytes")  # fmt: skip


def _watch_random(module: ModuleType) -> None:
    original = module.seed
    if _ours(original):
        return
    drew = [False]  # the global RNG drawn from, outside any import, before its first seed
    originals = {name: getattr(module, name) for name in _DRAWS if hasattr(module, name)}

    def watched(name: str, draw: Callable[..., Any]) -> Callable[..., Any]:
        def first_draws(*args: Any, **kwargs: Any) -> Any:
            if not drew[0] and not _importing():
                drew[0] = True
                for each, function in originals.items():  # told once: no cost from now on
                    setattr(module, each, function)
            return draw(*args, **kwargs)

        return _mark(first_draws)

    for name, draw in originals.items():
        setattr(module, name, watched(name, draw))

    def seed(a: Any = None, version: int = 2) -> None:
        _saw_seed("python", a, lambda: drew[0])
        original(a, version)

    setattr(module, "seed", _mark(seed))  # noqa: B010 - a module's attribute, replaced


def _watch_numpy(module: ModuleType) -> None:
    legacy, make = module.seed, module.default_rng
    if _ours(legacy):
        return
    try:
        _initial["numpy"] = module.get_state()
    except Exception:
        pass

    def drawn() -> bool:
        before, now = _initial.get("numpy"), module.get_state()
        return before is not None and (before[2] != now[2] or bool((before[1] != now[1]).any()))

    def seed(seed: Any = None) -> None:
        _saw_seed("numpy", seed, drawn)
        legacy(seed)

    def default_rng(seed: Any = None) -> Any:
        if seed is not None and not hasattr(seed, "bit_generator") and not _importing():
            _saw_seed("numpy.default_rng", seed)
        return make(seed)

    setattr(module, "seed", _mark(seed))  # noqa: B010
    setattr(module, "default_rng", _mark(default_rng))  # noqa: B010


def _watch_torch(module: ModuleType) -> None:
    original = module.manual_seed
    if _ours(original):
        return

    def drawn() -> bool:
        # Seeding a fresh generator with the last seed and comparing states tells whether the
        # default generator has been drawn from since it was last seeded (or created).
        fresh = module.Generator()
        fresh.manual_seed(module.initial_seed())
        return not module.equal(fresh.get_state(), module.get_rng_state())

    def manual_seed(seed: Any) -> Any:
        _saw_seed("torch", seed, drawn)
        return original(seed)

    setattr(module, "manual_seed", _mark(manual_seed))  # noqa: B010
    if getattr(module, "random", None) is not None:
        module.random.manual_seed = module.manual_seed
    cuda = getattr(module, "cuda", None)
    for name in ("manual_seed", "manual_seed_all"):
        function = getattr(cuda, name, None)
        if function is not None and not _ours(function):
            setattr(cuda, name, _cuda_seeder(function))


def _cuda_seeder(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def seeded(seed: Any) -> Any:
        _saw_seed("cuda", seed)
        return function(seed)

    return _mark(seeded)


def watch_seeds() -> None:
    """Observe every seed this process sets from now on (and numpy and torch once imported)."""
    after_import("random", _watch_random)
    after_import("numpy.random", _watch_numpy)
    after_import("torch", _watch_torch)


def seeds_seen() -> dict[str, Any]:
    """The seeds this process set so far, and the RNGs drawn from before they were seeded."""
    return {
        key: _report[key]
        for key in ("seeds", "reseeded", "later_seeds", "drawn_before_seeding")
        if key in _report
    }


# --- the interpreter ------------------------------------------------------------------------


def _torch_files() -> dict[str, str] | None:
    """torch's version and CUDA, read from its version.py: torch is never imported for this,
    nor `importlib.util` or `re`, which would cost a short script a tenth of its start-up."""
    for entry in sys.path:
        path = os.path.join(entry or ".", "torch", "version.py")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(65536)
        except OSError:
            continue
        info: dict[str, str] = {}
        for line in text.splitlines():
            key, equals, value = line.partition("=")
            name = {"__version__": "version", "cuda": "cuda", "hip": "hip"}.get(
                key.split(":")[0].strip()
            )
            value = value.strip()
            if name and equals and value[:1] in ("'", '"') and value[-1:] == value[:1]:
                info[name] = value[1:-1]
        return info or None
    return None


def describe_torch(torch: ModuleType) -> dict[str, Any]:
    """torch, CUDA and cuDNN as an imported torch reports them.

    GPU names are asked only if the script has started CUDA itself: starting it here, at the
    process's end, would cost seconds. Otherwise `nvidia-smi` names them (gitexp.environment).
    """
    info: dict[str, Any] = {"version": str(torch.__version__), "cuda": torch.version.cuda}
    cudnn = torch.backends.cudnn
    info["cudnn"] = cudnn.version() if cudnn.is_available() else None
    cuda = torch.cuda
    if cuda.is_initialized():
        count = cuda.device_count()
        info["gpus"] = [cuda.get_device_name(i) for i in range(count)]
    return {k: v for k, v in info.items() if v is not None}


def distributions() -> list[str]:
    """`name==version` of every installed distribution, read from folder names alone.

    Reading each distribution's METADATA file costs tens of milliseconds; the
    `<name>-<version>.dist-info` folder names say the same.
    """
    found = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                parts = name.rsplit(".", 1)[0].split("-")
                if len(parts) >= 2:
                    found.add(f"{parts[0]}=={parts[1]}")
    return sorted(found, key=str.lower)


_IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalVM"}


def describe() -> dict[str, Any]:
    """This interpreter: Python, platform, packages and torch (from torch itself if imported).

    Values absent here are left out rather than null: absent and null are the same value.
    """
    uname = os.uname()
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        libc = None
    name = sys.implementation.name
    torch = sys.modules.get("torch")
    platform = {"system": uname.sysname, "release": uname.release, "machine": uname.machine}
    if libc:
        platform["libc"] = libc
    described: dict[str, Any] = {
        "python": {
            "version": sys.version.split()[0],
            "implementation": _IMPLEMENTATIONS.get(name, name),
        },
        "platform": platform,
        "packages": distributions(),
    }
    found = describe_torch(torch) if torch is not None else _torch_files()
    if found:
        described["torch"] = found
    return described


# --- the process's report ----------------------------------------------------------------------


def _save() -> None:
    """Write the report as a Python literal (gitexp reads it with ast.literal_eval): json
    would import `re`, a tenth of a short script's start-up."""
    if _path is None or not _observing():
        return
    temporary = f"{_path}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(repr(_report))
        os.replace(temporary, _path)
    except (OSError, ValueError, TypeError):
        pass  # a full disk or an odd value: the run goes on, its record says less


def _at_exit() -> None:
    if not _observing():
        return
    try:
        _report["described"] = describe()
    except Exception as error:
        _report["described_error"] = repr(error)
    _report["ended"] = True
    _save()


def note_init() -> None:
    """Say that this process called gitexp.init: it is the run's training process."""
    if _observing() and _path is not None:
        _report["init"] = True
        _save()


def _helper_process() -> bool:
    """multiprocessing's workers and servers: started by the script, not the script."""
    argv = getattr(sys, "orig_argv", sys.argv)
    return any(
        word == "--multiprocessing-fork" or word.startswith("from multiprocessing") for word in argv
    )


def _rank() -> str | None:
    for name in _RANK_VARIABLES:
        if name in os.environ:
            return os.environ[name]
    return None


def watch() -> None:
    """Observe seeds and the command line's parsing in this process from now on (a script
    run on its own that imports gitexp)."""
    global _pid
    if not _pid:
        _pid = os.getpid()
    after_import("argparse", _watch_argparse)
    watch_seeds()


def namespace() -> dict[str, Any] | None:
    """What this process's argparse parser read from its command line, if one did."""
    found = _report.get("namespace")
    return dict(found) if isinstance(found, dict) else None


def start() -> None:
    """Observe this process for the run in GITEXP_RUN_DIR (called by sitecustomize)."""
    global _pid, _path
    folder = os.environ.get("GITEXP_RUN_DIR", "")
    if _pid or not os.path.isdir(folder) or _helper_process():
        return
    depth = os.environ.get(DEPTH, "0")
    os.environ[DEPTH] = str(int(depth) + 1 if depth.isdigit() else 1)  # for our children
    reports = os.path.join(folder, REPORTS)
    try:
        os.makedirs(reports, exist_ok=True)
    except OSError:
        return
    _pid = os.getpid()
    _path = os.path.join(reports, f"{_pid}.report")
    _report.update(
        pid=_pid,
        ppid=os.getppid(),
        depth=int(depth) if depth.isdigit() else 0,
        rank=_rank(),
        argv=list(getattr(sys, "orig_argv", sys.argv)),
        cwd=os.getcwd(),
    )
    after_import("argparse", _watch_argparse)
    watch_seeds()
    import atexit

    atexit.register(_at_exit)  # written then, or as soon as there is something to say


if __name__ == "__main__":
    import json

    json.dump(describe(), sys.stdout)
