"""What a reviewer finds beside the records: the runs branch's README and .gitattributes, and
the attributes that keep published copies of records (`gitexp publish`) byte for byte."""

from __future__ import annotations

from gitexp.record import METRICS, OUTPUT

ATTRIBUTES, README = ".gitattributes", "README.md"

# Bulky files a reviewer rarely reads line by line: code hosts collapse a file marked
# generated in a pull request's diff (GitHub and GitLab read `linguist-generated`, GitLab also
# `gitlab-generated`); the file stays in the repository, and `git diff` still shows it.
_COLLAPSED = (METRICS, OUTPUT)


def _collapsed(prefix: str) -> bytes:
    lines = (
        f"{prefix}{name} linguist-generated=true gitlab-generated=true\n" for name in _COLLAPSED
    )
    return "".join(lines).encode()


RUNS_ATTRIBUTES = (
    b"# Written by gitexp: metric series and output logs collapse in a pull request's diff.\n"
    + _collapsed("experiments/*/")
)

# `experiments/<id>/.gitattributes` of a copy published on a code branch (`gitexp publish`),
# scoped to that folder so that nothing else of the project is touched. A published copy is
# verified byte for byte, so no checkout may rewrite its line ends (`-text`), pass it through
# a filter such as LFS (`-filter`), expand `$Id$` (`-ident`) or re-encode it
# (`-working-tree-encoding`).
PUBLISHED_ATTRIBUTES = (
    b"# Written by gitexp publish: a copy of a signed run record, checked byte for byte by\n"
    b"# `gitexp verify`; never converted on checkout, its bulky files collapsed in diffs.\n"
    b"* -text -filter -ident -working-tree-encoding\n" + _collapsed("")
)

RUNS_README = """\
# Experiment records

This branch is written by gitexp, a git-native experiment tracker. Each commit records one
training run as plain text. Nobody needs to check the branch out: read it with `git log`,
`git show` and `git diff`.

## Reading it

- `git log --first-parent {branch}` lists the runs, newest first: one commit each (the
  oldest commit only starts the branch).
- `git show --first-parent <commit>` shows what one run commit added. A run commit has two
  parents (the branch before it, and the snapshot of the code the run used), so a plain
  `git show` prints a combined diff against both, which is not what you want.
- `git diff <commit A> <commit B> -- experiments/` compares two records.

## Layout

`experiments/<run id>/` holds one run's record:

| file | what it holds |
|---|---|
| `run.yaml` | identity and outcome: name, notes, tags, status, command, start and end |
| `config.yaml` | the complete resolved configuration the script used |
| `code.yaml`, `code.diff` | the commit the run started from, and its uncommitted changes |
| `env.yaml` | Python, packages, CUDA and GPUs |
| `seeds.yaml` | every seed the run set, as observed in the process |
| `data.yaml`, `artifacts.yaml` | datasets read and checkpoints written, pinned by DVC |
| `metrics.tsv`, `summary.yaml` | the metric series, and the last, min and max of each |
| `output.log` | the run's output, bounded in size |
| `annotations.yaml` | tags and notes added later: the only file ever changed |

A run commit's second parent (`<commit>^2`) is a snapshot commit of the exact working tree
the run used, so `git diff <commit A>^2 <commit B>^2` compares two runs' code.

## Trusting it

Every file except `annotations.yaml` is written once and never edited. Run commits are signed
the way git signs commits: `git verify-commit <commit>` checks one (for ssh signatures git
needs `gpg.ssh.allowedSignersFile`, the keys you trust), and `gitexp verify` checks that every
record was made by a commit signed by a key you trust and is unchanged since.

`.gitattributes` marks `metrics.tsv` and `output.log` as generated, so code hosts collapse
them in a pull request's diff; they stay in the repository.
"""
