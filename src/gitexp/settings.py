"""Repository settings, read from `.gitexp.yaml` at the top of the working tree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp import git, limits, yamlio
from gitexp.errors import GitexpError
from gitexp.secrets_scan import SecretRules, check_pattern

SETTINGS_FILE = ".gitexp.yaml"
DEFAULT_BRANCH = "gitexp/runs"
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
DEFAULT_OUTPUT_LIMIT = 1024 * 1024
# Where a run writes what it makes (`run.dir` is outputs/<id>/): never code (DESIGN.md §1).
OUTPUTS_DIR = "outputs"

# Environment variables worth recording: they change what a run computes or where it ran.
# Never the whole environment, which holds tokens (DESIGN.md §1).
DEFAULT_ENV_ALLOW = (
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_DEVICE_ORDER",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "MKL_NUM_THREADS",
    "NCCL_*",
    "NUMEXPR_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_NTASKS",
    "TF_CPP_MIN_LOG_LEVEL",
    "TOKENIZERS_PARALLELISM",
    "TORCH_*",
    "WORLD_SIZE",
)


@dataclass(frozen=True)
class Settings:
    """What a repository asks of gitexp; every field has a safe default."""

    branch: str = DEFAULT_BRANCH
    require_clean: bool = False
    require_signed: bool = False  # refuse to write a record git cannot sign
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # larger untracked files are left out
    output_limit: int = DEFAULT_OUTPUT_LIMIT  # bytes of output.log kept
    env_allow: tuple[str, ...] = field(default=DEFAULT_ENV_ALLOW)
    data: tuple[str, ...] | None = None  # the datasets runs read; None: every DVC-tracked path
    axis_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name → patterns
    axis_ignore: tuple[str, ...] = ()  # axes `diff` never counts
    secrets: SecretRules = field(default_factory=SecretRules)  # names and patterns to redact

    @property
    def runs_ref(self) -> str:
        return f"refs/heads/{self.branch}"


def _expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise GitexpError(f"{SETTINGS_FILE}: `{key}` has the wrong type; see the README")
    return value


def _branch(value: Any) -> str:
    """The runs branch, checked by git's own rules for a name under refs/heads/."""
    branch: str = _expect(value, str, "branch")
    if branch.startswith("refs/"):
        short = branch.removeprefix("refs/heads/")
        example = short if short != branch and short else DEFAULT_BRANCH
        raise GitexpError(
            f"{SETTINGS_FILE}: `branch` is {branch!r}, a full ref name; give the name under "
            f"refs/heads/, e.g. branch: {example}"
        )
    if not valid_branch(branch):
        raise GitexpError(
            f"{SETTINGS_FILE}: `branch` {branch!r} is not a valid git branch name; use one "
            f"that `git check-ref-format --branch` accepts, e.g. branch: {DEFAULT_BRANCH}"
        )
    return branch


def valid_branch(branch: str) -> bool:
    """Whether git takes `branch` as a branch name (a name under refs/heads/)."""
    if branch == "HEAD" or branch.startswith("-"):  # git refuses these as branch names
        return False
    checked = git.run(None, "check-ref-format", f"refs/heads/{branch}")
    if checked is None:  # no git here: libgit2 knows the same rules
        import pygit2

        return bool(pygit2.reference_is_valid_name(f"refs/heads/{branch}"))
    return checked.returncode == 0


def _secrets(value: Any) -> SecretRules:
    """`secrets: {names: [...], patterns: [...]}`, every pattern a valid regular expression."""
    given = _expect(value, dict, "secrets")
    unknown = sorted(set(given) - {"names", "patterns"})
    if unknown:
        raise GitexpError(
            f"{SETTINGS_FILE}: unknown setting 'secrets.{unknown[0]}'; use secrets.names and "
            "secrets.patterns"
        )
    lists = {key: _expect(given.get(key, []), list, f"secrets.{key}") for key in given}
    for key, items in lists.items():
        for item in items:
            _expect(item, str, f"secrets.{key}")
    patterns = tuple(lists.get("patterns", []))
    for index, pattern in enumerate(patterns):
        problem = check_pattern(pattern)
        if problem:
            raise GitexpError(
                f"{SETTINGS_FILE}: secrets.patterns[{index}] {pattern!r} {problem}; fix it, "
                "e.g. 'corp-[0-9a-f]{32}'"
            )
    return SecretRules(names=tuple(lists.get("names", [])), patterns=patterns)


def load(workdir: Path | None) -> Settings:
    """The settings of the repository whose working tree is `workdir` (defaults if none)."""
    path = workdir / SETTINGS_FILE if workdir else None
    if path is None or not path.is_file():
        return Settings()
    try:
        with path.open("rb") as stream:
            raw = stream.read(limits.CONFIG.file_size + 1)
    except OSError as e:
        raise GitexpError(f"cannot read {SETTINGS_FILE}: {e.strerror}") from None
    # A file of the repository, not of the command line: past the limits, exit status 1.
    data = yamlio.load_bounded(raw, SETTINGS_FILE, limits.CONFIG, GitexpError) or {}
    if not isinstance(data, dict):
        raise GitexpError(f"{SETTINGS_FILE} must be a mapping of settings; see the README")
    known = {"branch", "require_clean", "require_signed", "snapshot", "output", "env", "data",
             "axes", "secrets"}  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise GitexpError(f"{SETTINGS_FILE}: unknown setting {unknown[0]!r}; see the README")
    snapshot = _expect(data.get("snapshot", {}), dict, "snapshot")
    output = _expect(data.get("output", {}), dict, "output")
    env = _expect(data.get("env", {}), dict, "env")
    axes = _expect(data.get("axes", {}), dict, "axes")
    groups = _expect(axes.get("groups", {}), dict, "axes.groups")
    return Settings(
        branch=_branch(data.get("branch", DEFAULT_BRANCH)),
        require_clean=_expect(data.get("require_clean", False), bool, "require_clean"),
        require_signed=_expect(data.get("require_signed", False), bool, "require_signed"),
        max_file_size=_expect(
            snapshot.get("max_file_size", DEFAULT_MAX_FILE_SIZE), int, "snapshot.max_file_size"
        ),
        output_limit=_expect(output.get("limit", DEFAULT_OUTPUT_LIMIT), int, "output.limit"),
        env_allow=DEFAULT_ENV_ALLOW + tuple(_expect(env.get("allow", []), list, "env.allow")),
        data=tuple(_expect(data["data"], list, "data")) if "data" in data else None,
        axis_groups={
            str(name): tuple(str(p) for p in _expect(patterns, list, f"axes.groups.{name}"))
            for name, patterns in groups.items()
        },
        axis_ignore=tuple(str(p) for p in _expect(axes.get("ignore", []), list, "axes.ignore")),
        secrets=_secrets(data.get("secrets", {})),
    )
