"""What a run's training process reported from inside (gitexp/boot), made into its record.

`gitexp run` starts the command with gitexp's start-up hook on its PYTHONPATH; each Python
process of the run then writes `observed/<pid>.report` into the run's folder: the namespace
its argparse parser produced, the seeds it set, and its interpreter. Here those reports
become config.yaml, seeds.yaml and env.yaml: one configuration, the one the script used,
seeds as they happened, and the environment of the process that trained.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitexp import argv, limits
from gitexp import boot as boot_folder
from gitexp import config as config_mod

if TYPE_CHECKING:
    from gitexp.record import Redaction
    from gitexp.secrets_scan import SecretRules

REPORTS = "observed"  # as in the observing module, which cannot import gitexp
DEPTH = "GITEXP_BOOT_DEPTH"
CODE_CONFIG = "config.code.yaml"  # the config given to gitexp.init, when the script gave one
_REPORT_BYTES = 16 << 20  # a namespace is small; a report past this is not read
_MAX_REPORTS = 256  # a shell loop starting thousands of interpreters: the first are enough
boot = boot_folder.load  # the observing module, one instance per process


def hooked() -> bool:
    """Whether this process is observed by the start-up hook of `gitexp run`."""
    module = sys.modules.get(boot_folder.MODULE)
    return module is not None and bool(getattr(module, "_path", None)) and module._observing()


# The namespace Hydra's own command line parser makes (`python app.py -m x=1`): Hydra's
# options, never the app's configuration, which is the composed config.
_HYDRA_CLI = {"overrides", "hydra_help", "multirun", "cfg"}


def _options(namespace: Mapping[str, Any] | None) -> bool:
    """Whether a parser's namespace holds a script's options: some, and not Hydra's own."""
    return bool(namespace) and not set(namespace or ()) >= _HYDRA_CLI


def script_options() -> dict[str, Any] | None:
    """The options this process's command line parser read (its argparse namespace,
    defaults included), for a run started in this process; None when no parser read the
    command line, or when it was Hydra's own."""
    module = sys.modules.get(boot_folder.MODULE)
    found: dict[str, Any] | None = module.namespace() if module is not None else None
    if not _options(found):
        return None
    return found


@dataclass(frozen=True)
class Report:
    """What one Python process of the run saw."""

    pid: int
    depth: int = 0  # observed Python processes above it: torchrun's workers are at 1
    rank: str | None = None
    argv: tuple[str, ...] = ()
    cwd: str = ""
    init: bool = False  # it called gitexp.init
    namespace: Mapping[str, Any] | None = None
    seeds: Mapping[str, Any] = field(default_factory=dict)
    reseeded: Mapping[str, int] = field(default_factory=dict)
    later_seeds: Mapping[str, Any] = field(default_factory=dict)
    drawn_before_seeding: tuple[str, ...] = ()
    described: Mapping[str, Any] | None = None

    @property
    def seen(self) -> dict[str, Any]:
        """Its seeds, in the shape of the observing module's `seeds_seen()`."""
        found: dict[str, Any] = {
            "seeds": dict(self.seeds),
            "reseeded": dict(self.reseeded),
            "later_seeds": dict(self.later_seeds),
            "drawn_before_seeding": list(self.drawn_before_seeding),
        }
        return {k: v for k, v in found.items() if v}

    @property
    def weight(self) -> tuple[bool, bool, bool, int, bool]:
        """How surely this is the training process: rank 0 (or no ranks), the one that
        called gitexp.init, one that parsed arguments, the deepest (torchrun's worker
        rather than torchrun), one that set seeds."""
        return (
            self.rank in (None, "0"),
            self.init,
            self.namespace is not None,
            self.depth,
            bool(self.seeds),
        )


def _mapping(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _report(path: Path) -> Report | None:
    try:
        with path.open("rb") as f:
            raw = f.read(_REPORT_BYTES + 1)
        if len(raw) > _REPORT_BYTES:
            return None
        import ast  # a literal, never code: literal_eval builds values and calls nothing

        data = ast.literal_eval(raw.decode("utf-8", "surrogateescape"))
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        namespace = data.get("namespace")
        return Report(
            pid=data["pid"],
            depth=int(data.get("depth") or 0),
            rank=None if data.get("rank") is None else str(data["rank"]),
            argv=tuple(str(w) for w in data.get("argv") or ()),
            cwd=str(data.get("cwd") or ""),
            init=data.get("init") is True,
            namespace=(
                limits.plain(namespace, f"the parsed arguments of process {data['pid']}")
                if isinstance(namespace, dict) else None
            ),
            seeds=_mapping(data.get("seeds")),
            reseeded=_mapping(data.get("reseeded")),
            later_seeds=_mapping(data.get("later_seeds")),
            drawn_before_seeding=tuple(str(r) for r in data.get("drawn_before_seeding") or ()),
            described=_mapping(data.get("described")) or None,
        )  # fmt: skip
    except (OSError, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None  # half-written by a process killed mid-write, or not a report
    except Exception:  # limits.plain refused it: too large or too deep to be a namespace
        return None


def reports(folder: Path) -> list[Report]:
    """Every readable report of the run, oldest process first."""
    found = []
    try:
        paths = sorted((folder / REPORTS).glob("*.report"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return []
    for path in paths[:_MAX_REPORTS]:
        report = _report(path)
        if report is not None:
            found.append(report)
    return found


def training(folder: Path) -> Report | None:
    """The report of the process that trained; the first of equals."""
    found = reports(folder)
    return max(found, key=lambda r: r.weight) if found else None


def program(
    report: Report | None, command: Sequence[str], workdir: Path, cwd: Path | None = None
) -> list[str]:
    """What `argv._` holds once a parser or gitexp.init gave the options: the script alone,
    repo-relative where it lies in the repository, so `python a.py` and `python b.py`
    differ and where it was started from does not."""
    words = argv.program(list(report.argv) if report and report.argv else list(command))
    if words and not words[0].startswith("-"):
        base = Path(report.cwd) if report and report.cwd else (cwd or workdir)
        path = (base / words[0]).resolve()
        root = workdir.resolve()
        if path.is_file() and path.is_relative_to(root):
            words[0] = path.relative_to(root).as_posix()
    return words


def launcher(report: Report | None, command: Sequence[str]) -> dict[str, Any]:
    """A launcher's own options, read from the command's words before the script that the
    training process ran: `torchrun --nproc_per_node 2 train.py` → {nproc_per_node: 2,
    _: [torchrun]}. Empty when the command runs the script itself."""
    if report is None or not report.argv:
        return {}
    script = argv.program(list(report.argv))
    if not script or script[0].startswith("-"):
        return {}
    if script[0] not in command[1:]:
        return {}  # started by a shell script, say: its words are not the script's
    head = list(command[: list(command).index(script[0], 1)])
    if argv.is_python(head[0]) and argv.program([*head, script[0]]) == script[:1]:
        return {}  # `python -u train.py`: the interpreter is no launcher
    found = argv.parse(head)
    program = found[argv.POSITIONAL][0]
    if "/" in program and not argv.is_python(program):  # where a tool is installed is env
        found[argv.POSITIONAL][0] = os.path.basename(program)
    return found


def _script_named(
    config: dict[str, Any], command: Sequence[str], workdir: Path, cwd: Path | None
) -> dict[str, Any]:
    """Options read from argv, with the script named as a parsed run names it
    (repo-relative), so where the command was started from is not a difference."""
    options = config.get(config_mod.ARGV)
    if not isinstance(options, dict):
        return config
    words = options.get(argv.POSITIONAL)
    script = argv.program(command)
    if not isinstance(words, list) or not words or not script or words[0] != script[0]:
        return config
    if script[0].startswith("-"):
        return config  # `-m module`: named the same from anywhere
    named = program(None, command, workdir, cwd)[0]
    config[config_mod.ARGV] = {**options, argv.POSITIONAL: [named, *words[1:]]}
    return config


def settle_config(
    launched: Mapping[str, Any],
    code_config: Mapping[str, Any] | None,
    report: Report | None,
    command: Sequence[str],
    workdir: Path,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """The record's one configuration: config files and `-p` overrides merged with the
    config given to gitexp.init, else with the namespace the script's parser produced, else
    (no parser seen) with the command's options read from argv."""
    base = {k: v for k, v in launched.items() if k != config_mod.ARGV}
    parsed: dict[str, Any] = {}
    if code_config is not None:
        merged = config_mod.merge(base, code_config)
        if report is not None and report.namespace is not None and _options(report.namespace):
            parsed = _not_given(report.namespace, code_config)
    elif report is not None and report.namespace is not None and _options(report.namespace):
        merged = config_mod.merge(base, report.namespace)  # what the script used wins
    else:
        return _script_named(dict(launched), command, workdir, cwd)
    # The script, and a launcher's own options: `--nproc_per_node 4` is a change too.
    options = launcher(report, command)
    words = [*options.pop(argv.POSITIONAL, []), *program(report, command, workdir, cwd)]
    # An integration gives the script's own options as `argv` (gitexp.integrations): kept.
    given = merged.get(config_mod.ARGV)
    kept = {k: v for k, v in given.items() if k != argv.POSITIONAL} if isinstance(given, dict) \
        else {}  # fmt: skip
    merged[config_mod.ARGV] = {**parsed, **kept, **options, argv.POSITIONAL: words}
    settled: dict[str, Any] = config_mod.sort_keys(merged)
    return settled


def _not_given(namespace: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The options a script parsed that the config it gave gitexp.init does not hold (under
    any key of that name, with that value): kept as `argv`, since `--lr 0.2` is a change
    whether or not the script hands it on. One it does hold is not recorded twice."""
    leaves = {(key.rsplit(".", 1)[-1], repr(value)) for key, value in
              config_mod.flatten(given).items()}  # fmt: skip
    return {
        key: value
        for key, value in namespace.items()
        if value is not None  # absent and null are one value: not written
        and (key, repr(value)) not in leaves
        and (key.replace("-", "_"), repr(value)) not in leaves
    }


def _load(data: bytes | None, name: str) -> dict[str, Any]:
    from gitexp import yamlio

    loaded = yamlio.load(data, name) if data else None
    return loaded if isinstance(loaded, dict) else {}


def settle(
    folder: Path,
    files: dict[str, bytes],
    command: Sequence[str],
    workdir: Path,
    secrets: SecretRules,
    cwd: Path | None = None,
) -> list[Redaction]:
    """Make the launch-time config.yaml, seeds.yaml and env.yaml of a finished run say what
    its training process reported; return what was redacted from its parsed arguments."""
    from gitexp import environment, secrets_scan, seeds, yamlio
    from gitexp.record import CONFIG, ENV, ENV_PROBE, SEEDS

    report = training(folder)
    redacted: list[Redaction] = []
    if report is not None:  # the child's own argv, as typed: `-c CODE` may hold a token
        words, redacted = secrets_scan.redact_argv(report.argv, secrets)
        report = replace(report, argv=tuple(words))
    if CONFIG in files:
        code_path = folder / CODE_CONFIG
        code = _load(code_path.read_bytes(), CODE_CONFIG) if code_path.exists() else None
        if report is not None and report.namespace is not None:  # recorded, in part at least
            namespace, hidden = secrets_scan.redact_config(report.namespace, secrets)
            report = replace(report, namespace=namespace)
            redacted += [r for r in hidden if r not in redacted]
        launched = _load(files[CONFIG], CONFIG)
        settled = settle_config(launched, code, report, command, workdir, cwd)
        files[CONFIG] = yamlio.dump(settled)
    if report is None:
        return redacted
    seen = report.seen
    if seen:
        files[SEEDS] = seeds.with_seen(_load(files.get(SEEDS), SEEDS), seen)
    if report.described is not None:
        probe = folder / ENV_PROBE
        around = _load(probe.read_bytes(), ENV_PROBE) if probe.exists() else {}
        env = environment.assemble(environment.INSIDE, report.described, around)
        files[ENV] = yamlio.dump(env)
    return redacted


def warnings(folder: Path, report: Report | None) -> list[str]:
    """What `gitexp run` says when the run ends, from the training process's `report`."""
    if report is None:
        return []
    return [*_config_warnings(folder, report), *_seed_warnings(folder, report)]


def _config_warnings(folder: Path, report: Report) -> list[str]:
    """Keys that `--config` files or `-p` set to one value and the script's parser to
    another: the record keeps the parser's, which is what the script read."""
    from gitexp.record import CONFIG

    if report.namespace is None or (folder / CODE_CONFIG).exists():
        return []
    launched = _load((folder / CONFIG).read_bytes(), CONFIG)
    given = config_mod.flatten({k: v for k, v in launched.items() if k != config_mod.ARGV})
    parsed = config_mod.flatten(report.namespace)
    clashes = sorted(k for k in given.keys() & parsed.keys() if given[k] != parsed[k])
    if not clashes:
        return []
    named = ", ".join(clashes[:5]) + (f" and {len(clashes) - 5} more" if len(clashes) > 5 else "")
    return [
        f"config {named} set by --config or -p differ from what the script's parser produced; "
        "the record keeps the parser's values (pass them as the script's own options instead)"
    ]


def _seed_warnings(folder: Path, report: Report) -> list[str]:
    """What the run's seed does not explain."""
    from gitexp import seeds
    from gitexp.record import SEEDS

    path = folder / SEEDS
    given = _load(path.read_bytes(), SEEDS).get("seed") if path.exists() else None
    given = given if isinstance(given, int) and not isinstance(given, bool) else None
    return seeds.warnings(given, report.seeds, report.drawn_before_seeding, report.later_seeds)
