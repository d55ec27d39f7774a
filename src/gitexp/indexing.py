"""Reading record folders into the index's rows: the part of the index that opens git
objects, and so the only one that loads libgit2. The catalog calls it when the branch has
moved since the index last read it; a listing from a warm index never does.
"""

from __future__ import annotations

import json
from typing import Any

import pygit2
from pygit2.enums import FileMode

from gitexp import axes, reader, store
from gitexp.config import flatten
from gitexp.errors import Unreadable
from gitexp.record import (
    ANNOTATIONS,
    ARTIFACTS,
    CODE,
    CONFIG,
    DATA,
    ENV,
    INVALID,
    RUN,
    SEEDS,
    SUMMARY,
    RunInfo,
    run_dir,
)
from gitexp.workspace import Workspace

# Record fields beyond run.yaml's identity that `log --columns/--where` can name, by key.
_CODE_FIELDS = ("commit", "branch", "snapshot", "dirty")


def folders(ws: Workspace) -> tuple[str, dict[str, pygit2.Oid]] | None:
    """The branch's tip and each run folder's tree on it; None before the first run."""
    tip = store.tip(ws)
    if tip is None:
        return None
    return str(tip.id), store.run_folders(tip)


def run_row(repo: pygit2.Repository, run_id: str, tree_id: pygit2.Oid) -> tuple[Any, ...]:
    """The `runs` row of one folder, in the catalog's column order."""
    try:
        reader.check_run_id(run_id)
        try:
            folder = repo[tree_id].peel(pygit2.Tree)
        except (KeyError, ValueError, pygit2.GitError):
            raise Unreadable(f"{run_dir(run_id)}: its folder object {tree_id} is missing") from None

        def read(name: str) -> bytes | None:
            return store.record_file(repo, folder, run_id, name)

        # What `show` and `checkout` would refuse, `log` lists as invalid: a file that is a
        # link or a folder, a data path outside the working tree.
        for entry in folder:
            if entry.filemode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                raise Unreadable(f"{run_dir(run_id)}/{entry.name} is not a plain file")
        reader.pins(run_id, DATA, read(DATA))
        info = reader.run_info(run_id, read(RUN))
        config = reader.mapping(run_id, CONFIG, read(CONFIG))
        summary = reader.summary(run_id, SUMMARY, read(SUMMARY))
        made = reader.pins(run_id, ARTIFACTS, read(ARTIFACTS))
        later = reader.annotated(run_id, read(ANNOTATIONS))
    except Unreadable as e:
        # One damaged or hostile record must not hide the others: it is listed as such.
        empty = json.dumps([])
        return (run_id, str(tree_id), None, INVALID, "", None, None, empty, None, empty, "{}",
                "{}", empty, empty, str(e), "{}", 0)  # fmt: skip
    return (
        run_id,
        str(tree_id),
        info.name,
        info.status,
        info.started,
        info.duration_s,
        info.exit_code,
        json.dumps(list(dict.fromkeys([*info.tags, *later.tags]))),
        info.notes,
        json.dumps(list(info.command)),
        json.dumps(flatten(config), default=str),
        json.dumps(summary, default=str),
        json.dumps(list(info.inputs)),
        json.dumps(sorted({pin.md5 for pin in made})),
        None,
        json.dumps(_fields(info, folder, repo), default=str),
        int(later.archived),
    )


def _fields(info: RunInfo, folder: pygit2.Tree, repo: pygit2.Repository) -> dict[str, Any]:
    """Record fields for `log --columns/--where`; code.yaml's are left out when it cannot be
    read, which listing the run does not need."""
    found: dict[str, Any] = {
        "host": info.host,
        "user": info.user,
        "cwd": info.cwd,
        "finished": info.finished,
    }
    try:
        code = reader.mapping(info.id, CODE, store.record_file(repo, folder, info.id, CODE))
    except Unreadable:
        code = {}
    found.update({f"code.{key}": code.get(key) for key in _CODE_FIELDS})
    return found


def inputs_row(
    repo: pygit2.Repository, run_id: str, tree_id: str, config_json: str
) -> tuple[Any, ...]:
    folder = repo[tree_id].peel(pygit2.Tree)
    config = json.loads(config_json)
    try:
        code = reader.mapping(run_id, CODE, store.record_file(repo, folder, run_id, CODE))
        data = {
            p.path: p.md5
            for p in reader.pins(run_id, DATA, store.record_file(repo, folder, run_id, DATA))
        }
        env = store.record_file(repo, folder, run_id, ENV) or b""
        seeds = reader.mapping(run_id, SEEDS, store.record_file(repo, folder, run_id, SEEDS))
    except Unreadable:
        code, data, env, seeds = {}, {}, b"", {}
    seeded = axes.seed_values(seeds)
    # Config keys that are seeds count on the seed axis: kept apart for the `near` filter.
    seed_keys = {
        key
        for key, value in config.items()
        if axes.is_seed_key(f"config.{key}") or axes.is_seed_value(value, seeded)
    }
    return (
        run_id,
        tree_id,
        str(code.get("snapshot", "")),
        json.dumps(list(code.get("config_files") or [])),
        json.dumps(data),
        axes.env_key(env),
        axes.seeds_key(seeds),
        json.dumps({k: v for k, v in config.items() if k not in seed_keys}),
        json.dumps({k: v for k, v in config.items() if k in seed_keys}),
        json.dumps(axes.dirty_submodules(code)),
        json.dumps(sorted(seeded)),
    )


def artifact_paths_row(repo: pygit2.Repository, run_id: str, tree_id: str) -> tuple[str, ...]:
    folder = repo[tree_id].peel(pygit2.Tree)
    try:
        made = reader.pins(run_id, ARTIFACTS, store.record_file(repo, folder, run_id, ARTIFACTS))
    except Unreadable:
        made = []
    return (run_id, tree_id, json.dumps(sorted({pin.path for pin in made})))
