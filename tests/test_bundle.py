"""`gitexp bundle create` / `import`: runs, code and data across an air gap in one file."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from .conftest import dvc, git, gitexp, run_ids


def _cache_files(root: Path) -> set[str]:
    cache = root / ".dvc" / "cache"
    return {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()}


@pytest.fixture
def cluster(project: Path, signing: Path) -> Path:
    """The project with DVC data, and two signed runs: one read the data, one made a model."""
    assert gitexp("init").exit_code == 0
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("x,y\n1,2\n3,4\n")
    dvc(project, "add", "data/train.csv")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    assert gitexp("run", "--", sys.executable, "train.py", "--lr", "0.1").exit_code == 0
    made = gitexp("run", "--output", "model.bin", "--", "sh", "-c", "echo weights > model.bin")
    assert made.exit_code == 0, made.output
    return project


@pytest.fixture
def workstation(cluster: Path, tmp_path: Path) -> Path:
    """A copy of the project's code on the other side of the air gap: no remote, no runs."""
    there = tmp_path / "workstation"
    git(tmp_path, "clone", "-q", str(cluster), str(there))
    git(there, "remote", "remove", "origin")
    git(there, "config", "gpg.ssh.allowedSignersFile", git(cluster, "config",
        "gpg.ssh.allowedSignersFile").strip())  # fmt: skip
    return there


@pytest.mark.slow
def test_a_bundle_carries_runs_code_and_data_across_the_gap(
    cluster: Path, workstation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stick = tmp_path / "stick" / "runs.gxb"
    stick.parent.mkdir()
    made = gitexp("bundle", "create", str(stick))
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith(f"bundled 2 runs into {stick}")
    assert [p.name for p in stick.parent.iterdir()] == ["runs.gxb"]  # no partial file left
    monkeypatch.chdir(workstation)
    assert gitexp("log").stderr.startswith("no runs yet")
    imported = gitexp("bundle", "import", str(stick))
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.startswith(f"imported 2 new runs from {stick} (0 were here already)")
    assert run_ids(workstation) == run_ids(cluster)
    assert gitexp("verify", "--all").exit_code == 0
    restored = gitexp("checkout", run_ids(workstation)[0], "--artifacts")
    assert restored.exit_code == 0, restored.output
    assert (workstation / "model.bin").read_text() == "weights\n"
    snapshot = git(workstation, "log", "-1", "--format=%P", "gitexp/runs").split()[-1]
    assert git(workstation, "cat-file", "-t", snapshot).strip() == "commit"  # the code came too
    again = gitexp("bundle", "import", str(stick))
    assert again.exit_code == 0
    assert again.stdout.startswith(f"imported 0 new runs from {stick} (2 were here already), 0 ")


@pytest.mark.slow
def test_runs_that_do_not_verify_are_refused_unless_asked_for(
    cluster: Path, workstation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stick = tmp_path / "runs.gxb"
    assert gitexp("bundle", "create", str(stick)).exit_code == 0
    monkeypatch.chdir(workstation)
    git(workstation, "config", "--unset", "gpg.ssh.allowedSignersFile")  # the key: unknown here
    cached = _cache_files(workstation)
    refused = gitexp("bundle", "import", str(stick))
    assert refused.exit_code == 4
    assert "does not verify" in refused.stderr and "nothing was imported" in refused.stderr
    assert "gitexp/runs" not in git(workstation, "branch", "--list", "gitexp/runs")
    assert _cache_files(workstation) == cached
    assert "refs/gitexp/bundle" not in git(workstation, "for-each-ref")
    taken = gitexp("bundle", "import", "--unverified", str(stick))
    assert taken.exit_code == 0, taken.output
    assert run_ids(workstation) == run_ids(cluster)


def _members(stick: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(stick) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def _write(stick: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(stick, "w") as tar:
        for info, content in members:
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def _refused(stick: Path, root: Path, words: str) -> None:
    before = git(root, "for-each-ref")
    cached = _cache_files(root)
    result = gitexp("bundle", "import", "--unverified", str(stick))
    assert result.exit_code == 4, result.output
    assert words in result.stderr and "nothing was imported" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert git(root, "for-each-ref") == before and _cache_files(root) == cached


@pytest.mark.slow
def test_a_damaged_or_altered_bundle_changes_nothing(
    cluster: Path, workstation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stick = tmp_path / "runs.gxb"
    assert gitexp("bundle", "create", str(stick)).exit_code == 0
    whole = stick.read_bytes()
    members = _members(stick)
    monkeypatch.chdir(workstation)

    largest = max((info for info, _ in members), key=lambda info: info.size)
    stick.write_bytes(whole[: largest.offset_data + largest.size // 2])  # cut short on the way
    _refused(stick, workstation, "not a whole gitexp bundle")

    altered = [(info, content) for info, content in members]
    index = next(i for i, (info, _) in enumerate(altered) if info.name.startswith("objects/"))
    info, content = altered[index]
    altered[index] = (info, content[:-1] + bytes([content[-1] ^ 1]))  # one bit flipped
    _write(stick, altered)
    _refused(stick, workstation, "does not match its checksum")

    # The manifest rewritten to match: the object still has to hash to its own name.
    manifest = members[0][1].decode()
    old = [line for line in manifest.splitlines() if "sha256" in line][index - 1]
    new = f"    sha256: {hashlib.sha256(altered[index][1]).hexdigest()}"
    _write(stick, [(members[0][0], manifest.replace(old, new).encode()), *altered[1:]])
    _refused(stick, workstation, "does not hash to its name")

    extra = tarfile.TarInfo("../../outside")
    _write(stick, [*members, (extra, b"x")])
    _refused(stick, workstation, "though its manifest does not list it")
    assert not (tmp_path.parent / "outside").exists()

    link = tarfile.TarInfo(members[1][0].name)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    _write(stick, [members[0], (link, b""), *members[2:]])
    _refused(stick, workstation, "as something other than a plain file")

    stick.write_bytes(b"not a tar at all" * 100)
    _refused(stick, workstation, "not a whole gitexp bundle")

    # A manifest naming another tip, or more runs than there are: the branch decides.
    lines = manifest.splitlines()
    tip_line = next(line for line in lines if line.startswith("tip: "))
    forged = manifest.replace(tip_line, "tip: " + "0" * 40).encode()
    _write(stick, [(members[0][0], forged), *members[1:]])
    _refused(stick, workstation, "its runs branch is not at the commit its manifest names")


@pytest.mark.slow
def test_the_data_of_chosen_runs_only(cluster: Path, tmp_path: Path) -> None:
    ids = run_ids(cluster)  # newest first: the model run, then the one that read the data
    everything = tmp_path / "all.gxb"
    assert gitexp("bundle", "create", str(everything)).exit_code == 0
    some = tmp_path / "some.gxb"
    made = gitexp("bundle", "create", str(some), "--runs", ids[1])
    assert made.exit_code == 0, made.output
    assert "with the data of 1:" in made.stdout
    names = {info.name for info, _ in _members(some)}
    assert "runs.bundle" in names and names < {info.name for info, _ in _members(everything)}
    listed = json.loads(gitexp("show", ids[1], "--json").stdout)
    data_md5 = listed["data"]["datasets"][0]["md5"]
    assert f"objects/{data_md5[:2]}/{data_md5[2:]}" in names
    none_yet = gitexp("bundle", "create", str(tmp_path / "x.gxb"), "--since", "2999-01-01")
    assert none_yet.exit_code == 0 and "with the data of 0: 0 DVC objects" in none_yet.stdout


@pytest.mark.slow
def test_push_to_a_gxb_file_and_pull_from_it_carry_a_bundle(
    cluster: Path, workstation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stick = tmp_path / "stick.gxb"
    pushed = gitexp("push", str(stick))
    assert pushed.exit_code == 0, pushed.output
    assert pushed.stdout.startswith(f"bundled 2 runs into {stick}")
    monkeypatch.chdir(workstation)
    pulled = gitexp("pull", str(stick))
    assert pulled.exit_code == 0, pulled.output
    assert pulled.stdout.startswith(f"imported 2 new runs from {stick}")
    assert run_ids(workstation) == run_ids(cluster)


def test_a_bundle_needs_a_folder_to_go_in(cluster: Path, tmp_path: Path) -> None:
    result = gitexp("bundle", "create", str(tmp_path / "nowhere" / "runs.gxb"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'nowhere'} is not a folder; create it, or write the bundle elsewhere\n"
    )


@pytest.mark.slow
def test_pull_takes_the_runs_branch_and_never_the_tags_beside_it(
    cluster: Path, workstation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(cluster, "tag", "evil", "gitexp/runs")
    git(cluster, "bundle", "create", str(tmp_path / "plain.bundle"), "gitexp/runs", "evil")
    monkeypatch.chdir(workstation)
    pulled = gitexp("pull", str(tmp_path / "plain.bundle"))
    assert pulled.exit_code == 0, pulled.output
    assert "evil" not in git(workstation, "tag", "--list")
    assert run_ids(workstation) == run_ids(cluster)
