"""Tags, notes and the archived mark added to a run after it ended: annotations.yaml, a
record's only mutable file.

Each change is one new (signed) commit that rewrites annotations.yaml alone, so `verify`
still finds every other file byte for byte as the run's own commit wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from gitexp import history, pending, reader, signing, store
from gitexp.errors import GitexpError
from gitexp.record import ANNOTATIONS, Annotations, Note, utc_iso
from gitexp.workspace import Workspace


def _check_tags(tags: Sequence[str]) -> None:
    for tag in tags:
        if not tag.strip() or "," in tag or "\n" in tag:
            raise GitexpError(f"{tag!r} is not a tag: a tag is a word, without commas")


def annotate(
    ws: Workspace,
    ref: str,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    add_note: str | None = None,
    remove_note: str | None = None,
    archive: bool | None = None,
) -> tuple[str, Annotations]:
    """Change a run's tags, notes or archived mark (`archive`: True to hide the run from
    listings, False to show it again) in one commit; return the run id and its annotations."""
    _check_tags([*add_tags, *remove_tags])
    if add_note is not None and not add_note.strip():
        raise GitexpError("a note needs some text: gitexp note ID 'why this run matters'")
    pending.recover(ws)
    run_id = history.resolve(ws, ref).id
    who = signing.identity(ws.repo)
    result: list[Annotations] = []

    def change(files: Mapping[str, bytes]) -> Mapping[str, bytes] | None:
        before = reader.annotated(run_id, files.get(ANNOTATIONS))
        tags = [t for t in dict.fromkeys([*before.tags, *add_tags]) if t not in remove_tags]
        notes = [n for n in before.notes if n.text != remove_note]
        if remove_note is not None and len(notes) == len(before.notes):
            raise GitexpError(f"run {run_id} has no note {remove_note!r}; see `gitexp show`")
        if add_note is not None:
            author = f"{who.name} <{who.email}>"
            notes.append(Note(add_note, author, utc_iso(datetime.now(timezone.utc))))
        archived = before.archived if archive is None else archive
        after = Annotations(tuple(tags), tuple(notes), archived)
        result[:] = [after]
        if after == before:
            return None
        updated = {name: data for name, data in files.items() if name != ANNOTATIONS}
        if after.tags or after.notes or after.archived:
            updated[ANNOTATIONS] = after.to_yaml()
        return updated

    summary = f"gitexp: annotate run {run_id}"
    described = _describe(add_tags, remove_tags, add_note, remove_note)
    if archive is not None:
        described = "\n".join(filter(None, [described, "archived" if archive else "unarchived"]))
    store.update_run(ws, run_id, change, (summary, described))
    return run_id, result[0]


def _describe(
    add_tags: Sequence[str],
    remove_tags: Sequence[str],
    add_note: str | None,
    remove_note: str | None,
) -> str:
    lines = [f"tag: +{t}" for t in add_tags] + [f"tag: -{t}" for t in remove_tags]
    if add_note is not None:
        lines.append(f"note: +{add_note}")
    if remove_note is not None:
        lines.append(f"note: -{remove_note}")
    return "\n".join(lines)
