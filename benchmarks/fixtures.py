"""Runs branches of thousands of records for the benchmarks, built in seconds.

One gitexp process per run costs ~20 ms with ssh signing, and with a flat `experiments/`
tree every run commit rewrites a listing that grows with the branch: 10,000 commits written
loose by libgit2 take minutes and ~2 GB. Here the objects go straight into one pack file
(indexed by `git index-pack`), each listing stored as a delta of the one before, as
`git gc` would leave them. The commits have gitexp's own shape (store._folder_commit): one
`experiments/<id>/` folder added to the previous tree, first parent the previous tip, second
parent the code snapshot, message `gitexp: run <id> succeeded`. Signed commits carry a real
SSH signature (the SSHSIG format of OpenSSH's PROTOCOL.sshsig, Ed25519), made in-process
with `cryptography`, that `git verify-commit` accepts under `gpg.format=ssh`.

    .venv/bin/python benchmarks/fixtures.py   # checks a small signed branch with git and gitexp
"""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pygit2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from timing import run

from gitexp import store
from gitexp.workspace import open_workspace

NAME, EMAIL = "bench", "bench@example.com"
# A realistic environment: the same for every run, as on one cluster.
PACKAGES = "".join(f"- package{i}==1.{i}.0\n" for i in range(180))
ENV_YAML = f"python:\n  version: 3.11.7\nvariables: {{}}\npackages:\n{PACKAGES}".encode()


def run_id(n: int) -> str:
    """The n-th benchmark run id: fixed width, so that ids sort in the order they are made."""
    return f"20260101-000000-{n:07d}"


def record(run_id: str, n: int, snapshot: str = "0" * 40) -> dict[str, bytes]:
    """The files of a small, valid run record: one point of a 100 lr x N seed sweep."""
    started = f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
    run = (
        f"schema: 1\nid: {run_id}\nname: run{n}\nstatus: succeeded\nexit_code: 0\n"
        f"started: '{started}'\nduration_s: 1.5\ncommand:\n- python\n- train.py\n"
        "cwd: .\ntags: [bench]\nhost: h\nuser: u\n"
    )
    return {
        "run.yaml": run.encode(),
        "config.yaml": f"argv:\n  lr: 0.{n % 100}\nbatch: 32\n".encode(),
        "code.yaml": f"commit: {snapshot}\nsnapshot: {snapshot}\ndirty: false\n".encode(),
        "data.yaml": b"datasets: []\n",
        "env.yaml": ENV_YAML,
        "seeds.yaml": f"seed: {n // 100}\n".encode(),
        "summary.yaml": f"loss:\n  last: 0.{n}\n  last_step: 9\n  count: 10\n".encode(),
        "output.log": b"epoch 0\n" * 8,
    }


def scratch_repository(root: Path, files: dict[str, str] | None = None) -> Path:
    """A git repository with one commit of `files` (a train.py by default)."""
    root.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", NAME],
                 ["config", "user.email", EMAIL]):  # fmt: skip
        subprocess.run(["git", *args], cwd=root, check=True)
    for name, text in (files or {"train.py": "pass\n"}).items():
        (root / name).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=root, check=True)
    return root


# --- SSH signatures ----------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    """An SSH wire-format string: a 32-bit big-endian length, then the bytes."""
    return struct.pack(">I", len(data)) + data


class SshKey:
    """An Ed25519 key written as OpenSSH files (for git, ssh-keygen and gitexp's own signing)
    that also signs in-process: ~50 µs a commit instead of an ssh-keygen process."""

    def __init__(self, folder: Path) -> None:
        self._key = Ed25519PrivateKey.generate()
        public = self._key.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._blob = _string(b"ssh-ed25519") + _string(raw)
        self.path = folder / "bench_ed25519"
        private = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        self.path.touch(mode=0o600)  # ssh-keygen refuses a private key others can read
        self.path.write_bytes(private)
        line = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        self.path.with_suffix(".pub").write_bytes(line + b"\n")
        self.allowed = folder / "allowed_signers"
        self.allowed.write_bytes(f"{EMAIL} ".encode() + line + b"\n")

    def sign(self, payload: bytes) -> str:
        """An armored SSHSIG of `payload` in the `git` namespace, as `ssh-keygen -Y sign`."""
        namespace, reserved, hashing = b"git", b"", b"sha512"
        digest = hashlib.sha512(payload).digest()
        signed = b"SSHSIG" + b"".join(map(_string, (namespace, reserved, hashing, digest)))
        signature = _string(b"ssh-ed25519") + _string(self._key.sign(signed))
        blob = (
            b"SSHSIG"
            + struct.pack(">I", 1)
            + b"".join(map(_string, (self._blob, namespace, reserved, hashing, signature)))
        )
        text = base64.b64encode(blob).decode()
        lines = [text[i : i + 70] for i in range(0, len(text), 70)]
        return (
            "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----"
        )

    def configure(self, root: Path) -> None:
        """Make `root` sign with this key (gitexp and git alike) and trust it in verify."""
        for name, value in (
            ("gpg.format", "ssh"),
            ("user.signingkey", str(self.path)),
            ("gpg.ssh.allowedSignersFile", str(self.allowed)),
        ):
            subprocess.run(["git", "config", name, value], cwd=root, check=True)


# --- a pack written directly -------------------------------------------------------------

_TYPES = {b"commit": 1, b"tree": 2, b"blob": 3}
_REF_DELTA = 7
_DELTA_DEPTH = 50  # git's own default for `git repack --depth`: reads stay cheap


def _size_header(kind: int, size: int) -> bytes:
    """A pack entry's header: type and size, 4 bits then 7 bits a byte, lowest first."""
    first = (kind << 4) | (size & 0x0F)
    rest = size >> 4
    return bytes([first | 0x80]) + _varint(rest) if rest else bytes([first])


def _varint(value: int) -> bytes:
    """7 bits a byte, lowest first, the top bit saying that more follow."""
    out = bytearray([value & 0x7F])
    value >>= 7
    while value:
        out[-1] |= 0x80
        out.append(value & 0x7F)
        value >>= 7
    return bytes(out)


def _append_delta(base_size: int, tail: bytes) -> bytes:
    """A git delta that copies the whole base then inserts `tail`."""
    out = bytearray(_varint(base_size) + _varint(base_size + len(tail)))
    for start in range(0, base_size, 0xFFFFFF):  # a copy moves at most 2^24 - 1 bytes
        size = min(0xFFFFFF, base_size - start)
        out += b"\xff" + start.to_bytes(4, "little") + size.to_bytes(3, "little")
    for start in range(0, len(tail), 0x7F):  # an insert carries at most 127 bytes
        chunk = tail[start : start + 0x7F]
        out += bytes([len(chunk)]) + chunk
    return bytes(out)


class Pack:
    """Objects written into one pack file; `close` has git index it into the repository."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        # Open across many `add` calls, closed by `close`.
        self._body: BinaryIO = tempfile.TemporaryFile(dir=git_dir)  # noqa: SIM115
        self._count = 0
        self._written: set[bytes] = set()

    def add(self, kind: bytes, data: bytes) -> bytes:
        """Write an object (once, however often it is added); its binary id."""
        oid = _object_id(kind, data)
        if oid not in self._written:
            self._written.add(oid)
            self._entry(_size_header(_TYPES[kind], len(data)), data)
        return oid

    def add_appended(self, oid: bytes, size: int, base: bytes, tail: bytes) -> None:
        """Write object `oid` of `size` bytes as the object `base` followed by `tail`."""
        self._written.add(oid)
        delta = _append_delta(size - len(tail), tail)
        self._entry(_size_header(_REF_DELTA, len(delta)) + base, delta)

    def _entry(self, header: bytes, data: bytes) -> None:
        self._body.write(header + zlib.compress(data, 1))
        self._count += 1

    def close(self) -> None:
        """Stream header, body and checksum to `git index-pack --stdin`, which names the
        pack, checks every object's id and writes its index."""
        whole = hashlib.sha1(b"PACK" + struct.pack(">II", 2, self._count))
        self._body.seek(0)
        with subprocess.Popen(
            ["git", f"--git-dir={self.git_dir}", "index-pack", "--stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        ) as git:  # fmt: skip
            assert git.stdin is not None
            git.stdin.write(b"PACK" + struct.pack(">II", 2, self._count))
            while chunk := self._body.read(1 << 20):
                whole.update(chunk)
                git.stdin.write(chunk)
            git.stdin.write(whole.digest())
            git.stdin.close()
        self._body.close()
        if git.returncode != 0:
            raise RuntimeError(f"git index-pack failed ({git.returncode})")


def _object_id(kind: bytes, data: bytes) -> bytes:
    found = hashlib.sha1(b"%s %d\0" % (kind, len(data)))
    found.update(data)
    return found.digest()


def _tree(entries: Iterable[tuple[str, bool, bytes]]) -> bytes:
    """A tree object's bytes from (name, is a folder, binary id), in git's order: a folder
    sorts as if its name ended in '/'."""
    ordered = sorted(entries, key=lambda e: e[0].encode() + (b"/" if e[1] else b""))
    return b"".join(
        (b"40000 " if folder else b"100644 ") + name.encode() + b"\0" + oid
        for name, folder, oid in ordered
    )


def _commit(
    tree: bytes, parents: list[bytes], message: str, when: int, key: SshKey | None
) -> bytes:
    """A commit object's bytes; signed as git signs: the signature of the unsigned text goes
    in a `gpgsig` header after the committer's line."""
    who = f"{NAME} <{EMAIL}> {when} +0000"
    head = f"tree {tree.hex()}\n" + "".join(f"parent {p.hex()}\n" for p in parents)
    head += f"author {who}\ncommitter {who}\n"
    if key is None:
        return f"{head}\n{message}".encode()
    signature = key.sign(f"{head}\n{message}".encode())
    return f"{head}gpgsig {signature.replace(chr(10), chr(10) + ' ')}\n\n{message}".encode()


def add_runs(root: Path, ids: list[str], key: SshKey | None = None, each: bool = False) -> str:
    """Put the runs `ids` on the runs branch (created as gitexp creates it when missing):
    one commit each, signed by `key` when given, with the code snapshot (HEAD) as second
    parent, when `each`; else one unsigned commit holding them all. Ids must sort after
    every run already there. Returns the new tip."""
    ws = open_workspace(root)
    repo = ws.repo
    tip = store.ensure_branch(ws)
    snapshot = str(repo.head.target)
    top = {str(e.name): (e.type_str == "tree", e.id.raw) for e in tip.tree}
    listing = bytearray()
    if "experiments" in top:
        listing += repo[pygit2.Oid(raw=top["experiments"][1])].read_raw()
        last = str(list(tip.tree["experiments"].peel(pygit2.Tree))[-1].name)
        assert ids[0] > last, "new run ids must sort after the runs on the branch"
    pack = Pack(Path(repo.path))
    parent, when, depth = tip.id.raw, int(time.time()), _DELTA_DEPTH
    previous: bytes | None = None  # the listing before this commit's, when in the pack
    for n, rid in enumerate(ids):
        files = record(rid, int(rid.rsplit("-", 1)[1]), snapshot)
        folder = pack.add(
            b"tree", _tree((k, False, pack.add(b"blob", v)) for k, v in files.items())
        )
        entry = b"40000 " + rid.encode() + b"\0" + folder
        listing += entry
        if not each and n < len(ids) - 1:
            continue
        data = bytes(listing)
        oid = _object_id(b"tree", data)
        if previous is not None and depth < _DELTA_DEPTH:
            pack.add_appended(oid, len(data), previous, entry)
            depth += 1
        else:
            pack.add(b"tree", data)
            depth = 0
        previous = oid
        top["experiments"] = (True, oid)
        tree = pack.add(b"tree", _tree((k, d, o) for k, (d, o) in top.items()))
        if each:
            message = f"gitexp: run {rid} succeeded\n"
            parents = [parent, bytes.fromhex(snapshot)]
        else:
            message, parents = f"bench: fill {len(ids):,} runs\n", [parent]
        parent = pack.add(
            b"commit", _commit(tree, parents, message, when + n, key if each else None)
        )
    pack.close()
    subprocess.run(["git", "update-ref", ws.runs_ref, parent.hex(), str(tip.id)], cwd=root,
                   check=True)  # fmt: skip
    return parent.hex()


def fill(root: Path, runs: int, first: int = 0) -> list[str]:
    """Put `runs` unsigned records on the branch in one commit, as a long history's tip
    would hold them; their ids."""
    ids = [run_id(n) for n in range(first, first + runs)]
    add_runs(root, ids)
    return ids


def signed_runs(root: Path, runs: int, key: SshKey, first: int = 0) -> list[str]:
    """`runs` records on the branch, one ssh-signed commit each, as gitexp writes them."""
    ids = [run_id(n) for n in range(first, first + runs)]
    add_runs(root, ids, key, each=True)
    return ids


def _check(runs: int) -> None:
    """Build a small signed branch and have git and gitexp check every signature."""
    with tempfile.TemporaryDirectory(prefix="gitexp-fixtures-") as tmp:
        root = scratch_repository(Path(tmp) / "repo")
        key = SshKey(Path(tmp))
        key.configure(root)
        start = time.perf_counter()
        ids = signed_runs(root, runs, key)
        built = time.perf_counter() - start
        for commit in run(["git", "rev-list", "--first-parent", "gitexp/runs"], root).split():
            run(["git", "verify-commit", commit], root)  # the branch's root is gitexp's own
        gitexp = [sys.executable, "-m", "gitexp", "verify"]
        run([*gitexp, "--all"], root)
        run([*gitexp, ids[len(ids) // 2]], root)
        run(["git", "fsck", "--strict", "--no-dangling"], root)
        # gitexp's own signed commit goes on top of the bulk ones.
        ws = open_workspace(root)
        head = str(ws.repo.head.target)
        more = run_id(runs)
        store.write_run(ws, more, record(more, runs, head), (f"gitexp: run {more} succeeded", ""),
                        snapshot=head)  # fmt: skip
        run([*gitexp, "--all"], root)
    print(f"{runs} signed runs built in {built * 1000:.0f} ms; git verify-commit, "
          "gitexp verify --all and git fsck agree")  # fmt: skip


if __name__ == "__main__":
    _check(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
