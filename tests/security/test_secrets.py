"""No secret enters a record, nor the remote it is pushed to.

Each secret is fake and random (a seeded generator: the same values every time), planted the
way a careless user or a chatty script would: untracked credential files, options, `-p`,
a config file, a URL, a header, and lines the script prints. After `gitexp run` and
`gitexp push`, every object of the repository and of the remote is read and searched.
"""

from __future__ import annotations

import ast
import json
import os
import random
import string
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitexp import secrets_scan, yamlio
from gitexp.output import OutputLog, assemble
from gitexp.record import Redaction
from gitexp.secrets_scan import NO_RULES, REDACTED, SecretRules

from ..conftest import git, gitexp, run_ids

_BASE62 = string.ascii_letters + string.digits


@dataclass
class _Fakes:
    """Random fake secrets, reproducible: a generator seeded once per test."""

    rng: random.Random = field(default_factory=lambda: random.Random(20261129))

    def token(self, size: int = 40, alphabet: str = _BASE62) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(size))

    def aws_key_id(self) -> str:
        return "AKIA" + self.token(16, string.ascii_uppercase + "234567")

    def private_key(self) -> str:
        body = self.token(280, _BASE62 + "+/")
        lines = [body[i : i + 70] for i in range(0, len(body), 70)]
        return "\n".join(
            ["-----BEGIN OPENSSH PRIVATE KEY-----", *lines, "-----END OPENSSH PRIVATE KEY-----"]
        )


LEAK = """\
import os, sys
print("training", " ".join(sys.argv[1:]))
print("service token:", os.environ["LEAK_TOKEN"])
print("resuming from", os.environ["LEAK_BARE"])
print("pushing to", os.environ["LEAK_URL"])
print("aws", os.environ["LEAK_AWS"])
print(open(os.environ["LEAK_KEY_FILE"]).read())
print("epoch 1 loss 0.25 lr 0.1 data data/train.csv")
"""


def _all_objects(repository: Path) -> bytes:
    """Every object git holds there, loose and packed, as content."""
    done = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repository,
        capture_output=True,
        check=True,
    )
    return done.stdout


def _record(root: Path, run_id: str, name: str) -> str:
    return git(root, "show", f"gitexp/runs:experiments/{run_id}/{name}")


def test_planted_secrets_reach_neither_the_repository_nor_its_remote(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _Fakes()
    (project / "leak.py").write_text(LEAK)
    git(project, "add", "leak.py")
    git(project, "commit", "-q", "-m", "a chatty script")
    planted: dict[str, str] = {}  # what → the secret value

    # Untracked files that hold credentials, each by a name that gives it away.
    files = {
        "creds.json": '{{"client_id": "lab", "client_secret": "{}"}}\n',
        "secrets.yaml": "wandb_api_key: {}\n",
        "config_secret.yaml": "database:\n  password: {}\n",
        "service-account.json": '{{"type": "service_account", "private_key_id": "{}"}}\n',
        "gcp-key.json": '{{"private_key_id": "{}"}}\n',
        "terraform.tfvars": 'db_password = "{}"\n',
        ".dockerconfigjson": '{{"auths": {{"registry.example.com": {{"auth": "{}"}}}}}}\n',
        ".npmrc": "//registry.npmjs.org/:_authToken={}\n",
        ".htpasswd": "admin:$apr1${}\n",
        ".pgpass": "db.example.com:5432:*:trainer:{}\n",
    }
    for name, template in files.items():
        planted[name] = fake.token(32)
        (project / name).write_text(template.format(planted[name]))
    # Untracked files whose names say nothing, but whose content does.
    planted["deploy_notes.md (key)"] = key = fake.private_key()
    (project / "deploy_notes.md").write_text(f"ssh key for the cluster:\n{key}\n")
    planted["settings_local.py (aws)"] = fake.aws_key_id()
    (project / "settings_local.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{planted["settings_local.py (aws)"]}"\n'
    )
    # A config file, untracked, with a token in it, and -p parameters.
    planted["config token"] = fake.token(20)
    (project / "exp.yaml").write_text(f"lr: 0.1\ntoken: {planted['config token']}\n")
    planted["-p api_key"] = fake.token(24)
    planted["-p wandb.token"] = fake.token(40, "0123456789abcdef")  # W&B keys are 40 hex
    # Options and words of the command.
    planted["--auth"] = f"svc:{fake.token(12)}"
    planted["--passphrase"] = f"{fake.token(6)}-{fake.token(6)}-{fake.token(6)}"
    planted["-k token"] = fake.token(40)
    planted["url password"] = fake.token(16)
    planted["bearer"] = fake.token(32)
    # What the script prints, from its environment (which no record holds).
    planted["printed token"] = fake.token(24)
    planted["printed bare token"] = fake.token(40)
    planted["printed url password"] = fake.token(16)
    planted["printed aws"] = fake.aws_key_id()
    planted["printed key"] = printed_key = fake.private_key()
    key_file = tmp_path / "id_cluster"
    key_file.write_text(printed_key)
    monkeypatch.setenv("LEAK_TOKEN", planted["printed token"])
    monkeypatch.setenv("LEAK_BARE", planted["printed bare token"])
    monkeypatch.setenv("LEAK_URL", f"https://bot:{planted['printed url password']}@example.com/x")
    monkeypatch.setenv("LEAK_AWS", planted["printed aws"])
    monkeypatch.setenv("LEAK_KEY_FILE", str(key_file))
    # A remote whose URL holds credentials, and the bare remote pushed to.
    planted["remote password"] = fake.token(16)
    remote_url = f"https://ci:{planted['remote password']}@git.example.com/lab/model.git"
    git(project, "remote", "add", "mirror", remote_url)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(project, "remote", "add", "origin", str(remote))

    result = gitexp(
        "run", "--name", "baseline-run", "--config", "exp.yaml",
        "-p", f"api_key={planted['-p api_key']}", "-p", f"wandb.token={planted['-p wandb.token']}",
        "--", sys.executable, "leak.py",
        "--auth", planted["--auth"], "--passphrase", planted["--passphrase"],
        "-k", planted["-k token"], "-k", "5", "--lr", "0.1", "--data", "data/train.csv",
        f"https://ci-bot:{planted['url password']}@git.example.com/lab/model.git",
        "-H", f"Authorization: Bearer {planted['bearer']}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert gitexp("push").exit_code == 0

    seen = {"repository": _all_objects(project), "remote": _all_objects(remote)}
    for where, objects in seen.items():
        assert b"baseline-run" in objects and b"data/train.csv" in objects  # the scan sees records
        for what, value in planted.items():
            for line in value.splitlines():  # a key block: no line of it either
                assert line.startswith("-----") or line.encode() not in objects, (where, what)

    (run_id,) = run_ids(project)
    run = yamlio.load(_record(project, run_id, "run.yaml"), "run.yaml")
    assert isinstance(run, dict)
    assert run["name"] == "baseline-run"
    assert {(r["where"], r["name"], r["reason"]) for r in run["redacted"]} == {
        ("command", "--auth", "secret option name"),
        ("command", "--passphrase", "secret option name"),
        ("command", "-k", "high-entropy string"),
        ("command", "argument 14", "credentials in a URL"),
        ("command", "-H", "authorization header"),
        ("config", "api_key", "secret key name"),
        ("config", "wandb.token", "secret key name"),
        ("config", "token", "secret key name"),
    }
    # Ordinary values are kept, in the command and in the configuration.
    assert run["command"] == [
        sys.executable, "leak.py", "--auth", REDACTED, "--passphrase", REDACTED,
        "-k", REDACTED, "-k", "5", "--lr", "0.1", "--data", "data/train.csv",
        f"https://{REDACTED}@git.example.com/lab/model.git",
        "-H", f"Authorization: Bearer {REDACTED}",
    ]  # fmt: skip
    config = yamlio.load(_record(project, run_id, "config.yaml"), "config.yaml")
    assert isinstance(config, dict)
    assert config["lr"] == 0.1 and config["token"] == REDACTED
    assert config["api_key"] == REDACTED and config["wandb"] == {"token": REDACTED}
    assert config["argv"]["k"] == [REDACTED, 5]
    assert (config["argv"]["lr"], config["argv"]["data"]) == (0.1, "data/train.csv")

    code = yamlio.load(_record(project, run_id, "code.yaml"), "code.yaml")
    assert isinstance(code, dict)
    left_out = {item["path"]: item["reason"] for item in code["left_out"]}
    assert left_out == {
        **{name: "looks like a secret" for name in files},
        "deploy_notes.md": "holds a secret: private key",
        "settings_local.py": "holds a secret: AWS Access Key",
        "exp.yaml": "holds a secret: a value for `token`",
    }
    assert code["remotes"]["mirror"] == "https://git.example.com/lab/model.git"

    log = _record(project, run_id, "output.log")
    assert "epoch 1 loss 0.25 lr 0.1 data data/train.csv" in log
    assert "-k 5 --lr 0.1 --data data/train.csv" in log
    note = log.rstrip("\n").rsplit("\n", 1)[-1]
    assert note.startswith(f"[gitexp: secrets redacted from this log as {REDACTED}: line 1 (")
    for reason in (
        "secret name", "high-entropy string", "credentials in a URL", "authorization header",
        "AWS Access Key", "private key",
    ):  # fmt: skip
        assert f"({reason})" in note


@pytest.mark.parametrize(
    ("command", "expected", "listed"),
    [
        (
            ["python", "t.py", "--auth", "svc:hunter2", "-k", "5", "--lr", "0.1"],
            ["python", "t.py", "--auth", REDACTED, "-k", "5", "--lr", "0.1"],
            [("--auth", "secret option name")],
        ),
        (
            ["env", "HF_API_KEY=abc", "python", "t.py", "--token=xyz", "--password", "pw"],
            [
                "env",
                f"HF_API_KEY={REDACTED}",
                "python",
                "t.py",
                f"--token={REDACTED}",
                "--password",
                REDACTED,
            ],
            [
                ("HF_API_KEY", "secret option name"),
                ("--token", "secret option name"),
                ("--password", "secret option name"),
            ],
        ),
        (
            [
                "python",
                "t.py",
                "--model",
                "meta-llama/Meta-Llama-3-8B-Instruct",
                "--resume",
                "3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49",
                "--run-name",
                "swift-sun-42",
                "--max-new-tokens",
                "50",
                "--sort-key",
                "loss",
                "--api-key",
                "k3y",
            ],
            [
                "python",
                "t.py",
                "--model",
                "meta-llama/Meta-Llama-3-8B-Instruct",
                "--resume",
                "3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49",
                "--run-name",
                "swift-sun-42",
                "--max-new-tokens",
                "50",
                "--sort-key",
                "loss",
                "--api-key",
                REDACTED,
            ],
            [("--api-key", "secret option name")],
        ),
        (
            [
                "python",
                "t.py",
                "--data",
                "s3://bucket/train-00001-of-01024.parquet",
                "wandb.api_key=0123456789abcdef0123456789abcdef01234567",
                "--out",
                "outputs/run_2026_11_29/checkpoint_epoch=3.ckpt",
                "--key",
                "gh1Xk2Lp9Qz8Rt7Yv6Wu5",
            ],
            [
                "python",
                "t.py",
                "--data",
                "s3://bucket/train-00001-of-01024.parquet",
                f"wandb.api_key={REDACTED}",
                "--out",
                "outputs/run_2026_11_29/checkpoint_epoch=3.ckpt",
                "--key",
                REDACTED,
            ],
            [("wandb.api_key", "secret option name"), ("--key", "secret option name")],
        ),
    ],
)
def test_the_command_loses_its_secrets_and_keeps_its_ordinary_values(
    command: list[str], expected: list[str], listed: list[tuple[str, str]]
) -> None:
    redacted, found = secrets_scan.redact_argv(command)
    assert redacted == expected
    assert found == [Redaction("command", name, reason) for name, reason in listed]


def test_the_config_loses_its_secrets_by_key_and_by_value() -> None:
    config = {
        "lr": 0.1,
        "wandb": {"token": "abc", "project": "vision"},
        "secrets": {"db": "pw", "pin": 1234},
        "db_url": "postgres://trainer:hunter2@db.example.com/runs",
        "tokenizer": {"pad_token": "<pad>", "max_tokens": 512},
        "data": {"md5": "3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d", "path": "data/train.csv"},
        "use_auth_token": True,
        "argv": {"auth": REDACTED, "k": 5},
    }
    redacted, found = secrets_scan.redact_config(config)
    assert redacted == {
        **config,
        "wandb": {"token": REDACTED, "project": "vision"},
        "secrets": {"db": REDACTED, "pin": REDACTED},
        "db_url": f"postgres://{REDACTED}@db.example.com/runs",
    }
    assert config["wandb"] == {"token": "abc", "project": "vision"}  # the script's own is intact
    assert found == [
        Redaction("config", "wandb.token", "secret key name"),
        Redaction("config", "secrets.db", "secret key name"),
        Redaction("config", "secrets.pin", "secret key name"),
        Redaction("config", "db_url", "credentials in a URL"),
    ]


@pytest.mark.parametrize(
    ("line", "expected", "reasons"),
    [
        ("training --token=hunter2 --lr 0.1", f"training --token={REDACTED} --lr 0.1",
         ["secret name"]),
        ("Namespace(auth='svc:hunter2', lr=0.1)", f"Namespace(auth='{REDACTED}', lr=0.1)",
         ["secret name"]),
        ('{"password": "hunter2", "epochs": 3}', f'{{"password": "{REDACTED}", "epochs": 3}}',
         ["secret name"]),
        ("curl -H 'Authorization: Bearer abcdefgh1234' https://x",
         f"curl -H 'Authorization: Bearer {REDACTED}' https://x", ["authorization header"]),
        ("key AKIAIOSFODNN7EXAMPLE and ghp_" + "a1B2" * 9,
         f"key {REDACTED} and {REDACTED}", ["AWS Access Key", "GitHub Token"]),
        ("pad_token: <pad>, max_tokens: 512, model: bert-base-multilingual-cased, step 100",
         "pad_token: <pad>, max_tokens: 512, model: bert-base-multilingual-cased, step 100", []),
    ],
)  # fmt: skip
def test_output_lines_lose_their_secrets(line: str, expected: str, reasons: list[str]) -> None:
    assert secrets_scan.redact_text_line(line) == (expected, reasons)


def test_a_secret_cut_in_two_where_output_is_truncated_leaves_no_half(tmp_path: Path) -> None:
    fake = _Fakes()
    tokens = [fake.token(40) for _ in range(300)]
    log = OutputLog(tmp_path, 2000)
    for i, token in enumerate(tokens):
        log.write(f"{i:05d} {token}\n".encode())
    log.close()
    kept = assemble(tmp_path, 2000, log.total, NO_RULES).decode()
    assert "output left out here" in kept and "00299" in kept
    for token in tokens:
        assert not any(token[i : i + 8] in kept for i in range(len(token) - 7)), token


def test_a_key_block_in_output_is_redacted_line_by_line(tmp_path: Path) -> None:
    key = _Fakes().private_key()
    log = OutputLog(tmp_path, 100_000)
    log.write(f"loading key\n{key}\ndone\n".encode())
    log.close()
    lines = assemble(tmp_path, 100_000, log.total, NO_RULES).decode().splitlines()
    assert lines[:7] == [
        "loading key",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        REDACTED, REDACTED, REDACTED, REDACTED,
        "-----END OPENSSH PRIVATE KEY-----",
    ]  # fmt: skip
    assert lines[7:] == [
        "done",
        "",
        f"[gitexp: secrets redacted from this log as {REDACTED}: line 2 (private key)]",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "creds.json", "secrets.yaml", "config_secret.yaml", "service-account.json",
        "gcp-key.json", "terraform.tfvars", ".dockerconfigjson", ".npmrc", ".htpasswd",
        ".pgpass", ".netrc", ".git-credentials", "kubeconfig", "home/.kube/config", "cert.p12",
        "cert.pfx", "server.key", "server.pem", "id_ed25519", ".env", ".env.local", ".envrc",
        "home/.aws/credentials", "application_default_credentials.json", ".pypirc",
    ],
)  # fmt: skip
def test_a_file_named_like_a_secret_is_left_out(path: str) -> None:
    assert secrets_scan.name_reason(path) == "looks like a secret"


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("notes.md", _Fakes().private_key(), "holds a secret: private key"),
        ("local.py", 'KEY = "AKIAIOSFODNN7EXAMPLE"\n', "holds a secret: AWS Access Key"),
        ("exp.yaml", "lr: 0.1\ntoken: s3cr3t\n", "holds a secret: a value for `token`"),
        ("train.py", 'API_TOKEN = "9fQx7Kp2LmN4bV8cZ1aS"\n',
         "holds a secret: a value for `API_TOKEN`"),
        ("train.py", "import os\ntoken = os.environ['TOKEN']\nauth = 'basic'\n", None),
        ("auth.py", "def login(password):\n    return password == 'x'\n", None),
        ("tokenizer.json", '{"pad_token": "<pad>", "model_max_length": 512}', None),
        ("exp.yaml", "lr: 0.1\ntoken: ${WANDB_TOKEN}\n", None),
    ],
)  # fmt: skip
def test_a_new_file_is_judged_by_its_content(
    tmp_path: Path, name: str, text: str, reason: str | None
) -> None:
    (tmp_path / name).write_text(text)
    assert secrets_scan.left_out_reason(name, tmp_path / name) == reason


def test_a_staged_but_uncommitted_secret_stays_out_of_the_snapshot(project: Path) -> None:
    (project / "creds.json").write_text('{"token": "9fQx7Kp2LmN4bV8cZ1aS3dF6gH0jK5lQ2wE4rT7y"}\n')
    git(project, "add", "creds.json")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    (run_id,) = run_ids(project)
    code = yamlio.load(_record(project, run_id, "code.yaml"), "code.yaml")
    assert isinstance(code, dict)
    assert code["left_out"] == [{"path": "creds.json", "reason": "looks like a secret"}]
    assert "creds.json" not in git(project, "ls-tree", "-r", "--name-only", code["snapshot"])
    assert "9fQx7Kp2LmN4" not in _record(project, run_id, "code.diff")


def test_the_repository_adds_its_own_names_and_patterns(project: Path) -> None:
    (project / ".gitexp.yaml").write_text(
        "secrets:\n  names: ['*_pin', 'vault.yaml']\n  patterns: ['corp-([0-9a-f]{12})']\n"
    )
    (project / "vault.yaml").write_text("anything: here\n")
    result = gitexp(
        "run", "--", sys.executable, "train.py", "--door_pin", "1234",
        "--ticket", "corp-0123456789ab", "--lr", "0.1",
    )  # fmt: skip
    assert result.exit_code == 0
    (run_id,) = run_ids(project)
    run = yamlio.load(_record(project, run_id, "run.yaml"), "run.yaml")
    assert isinstance(run, dict)
    assert run["command"][2:] == [
        "--door_pin", REDACTED, "--ticket", f"corp-{REDACTED}", "--lr", "0.1",
    ]  # fmt: skip
    assert run["redacted"] == [
        {"where": "command", "name": "--door_pin", "reason": "named in .gitexp.yaml secrets.names"},
        {"where": "command", "name": "--ticket", "reason": "matches .gitexp.yaml secrets.patterns"},
    ]
    code = yamlio.load(_record(project, run_id, "code.yaml"), "code.yaml")
    assert isinstance(code, dict)
    assert code["left_out"] == [
        {"path": "vault.yaml", "reason": "looks like a secret: named in .gitexp.yaml secrets.names"}
    ]
    log = _record(project, run_id, "output.log")
    assert "0123456789ab" not in log and "1234" not in log
    assert f"--ticket corp-{REDACTED}" in log


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (
            "corp-[0-9",
            "is not a valid regular expression (unterminated character set at position 5)",
        ),
        ("x*", "matches the empty string, so it would redact everything"),
    ],
)  # fmt: skip
def test_a_bad_pattern_is_one_clear_error_and_nothing_is_written(
    project: Path, pattern: str, problem: str
) -> None:
    (project / ".gitexp.yaml").write_text(f"secrets:\n  patterns: ['{pattern}']\n")
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: .gitexp.yaml: secrets.patterns[0] {pattern!r} {problem}; fix it, "
        "e.g. 'corp-[0-9a-f]{32}'\n"
    )
    assert git(project, "branch", "--list", "gitexp/runs") == ""


def test_detect_secrets_rules_are_read_once_and_cached(tmp_path: Path) -> None:
    """The rules come from the installed detect-secrets; a damaged cache is read again."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    scan = (
        "from gitexp import secrets_scan, record; import sys\n"
        "print(secrets_scan.redact_text_line('id AKIAIOSFODNN7EXAMPLE')[1], "
        "'detect_secrets' in sys.modules)"
    )
    first = subprocess.run([sys.executable, "-c", scan], env=env, capture_output=True, text=True)
    assert first.stdout == "['AWS Access Key'] True\n", first.stderr
    (cache,) = (tmp_path / "gitexp").glob("detect-secrets-*.json")
    kinds = {rule[0] for rule in json.loads(cache.read_text())["rules"]}
    assert {"AWS Access Key", "GitHub Token", "Private Key", "Slack Token"} <= kinds
    second = subprocess.run([sys.executable, "-c", scan], env=env, capture_output=True, text=True)
    assert second.stdout == "['AWS Access Key'] False\n", second.stderr  # not even imported
    cache.write_text("{not json")
    third = subprocess.run([sys.executable, "-c", scan], env=env, capture_output=True, text=True)
    assert third.stdout == "['AWS Access Key'] True\n", third.stderr
    assert json.loads(cache.read_text())["rules"]


def test_neither_help_nor_a_plain_run_imports_detect_secrets(project: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # no rules cached yet
    helped = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gitexp", "--help"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "secrets_scan" not in helped.stderr and "detect_secrets" not in helped.stderr
    # `python` by name: a long word in the command, such as the path of a checkout called
    # `cleanclone`, is rightly scanned, and that loads detect-secrets' rules once.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gitexp", "run", "--",
         "python", "-c", "print('epoch 1 loss 0.5')"],
        cwd=project, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "gitexp.secrets_scan" in ran.stderr
    assert "detect_secrets" not in ran.stderr


def test_only_secrets_scan_imports_detect_secrets() -> None:
    package = Path(secrets_scan.__file__).parent
    importers = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            if any(name.split(".")[0] == "detect_secrets" for name in names):
                importers.append(path.stem)
    assert sorted(set(importers)) == ["secrets_scan"]


def test_a_random_token_is_told_from_names_people_choose() -> None:
    fake = _Fakes()
    tokens = [fake.token(40) for _ in range(200)]
    tokens += [fake.token(40, _BASE62 + "+/") for _ in range(50)]
    assert all(secrets_scan.looks_random(token) for token in tokens)
    chosen = [
        "meta-llama/Meta-Llama-3-8B-Instruct", "ResNet50WithBatchNorm2d",
        "sentence-transformers/all-MiniLM-L6-v2", "20261129-231231-2do5huv",
        "3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49", "550e8400-e29b-41d4-a716-446655440000",
        "ckpt_s3_b128_lr3e4_wd01_seed42", "convnext_xxlarge_clip_laion2b_soup_ft_in1k",
        "mlruns/0/4e2a9f1b8c7d6e5f4a3b2c1d0e9f8a7b/artifacts", "BertForSequenceClassification",
    ]  # fmt: skip
    assert [name for name in chosen if secrets_scan.looks_random(name)] == []


def test_settings_rules_reach_output_log_of_the_repository(project: Path) -> None:
    """The repository's own patterns apply to what the script prints."""
    (project / ".gitexp.yaml").write_text("secrets:\n  patterns: ['corp-[0-9a-f]{12}']\n")
    command = [sys.executable, "-c", "print('ticket corp-0123456789ab')"]
    assert gitexp("run", "--", *command).exit_code == 0
    log = git(project, "show", f"gitexp/runs:experiments/{run_ids(project)[0]}/output.log")
    assert log == (
        f"ticket {REDACTED}\n\n[gitexp: secrets redacted from this log as {REDACTED}: "
        "line 1 (matches .gitexp.yaml secrets.patterns)]\n"
    )
    folder = project / "scratch"
    folder.mkdir()
    raw = OutputLog(folder, 10_000)
    raw.write(b"ticket corp-0123456789ab\n")
    raw.close()
    assert assemble(folder, 10_000, raw.total, SecretRules()).startswith(b"ticket corp-0123")


def test_config_given_in_code_under_gitexp_run_loses_its_secrets(project: Path) -> None:
    token = _Fakes().token()
    (project / "train_args.py").write_text(
        "import argparse, gitexp\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--auth')\n"
        "parser.add_argument('--lr', type=float, default=0.1)\n"
        "with gitexp.init(config=parser.parse_args()) as run:\n"
        "    run.log({'loss': 1.0})\n"
    )
    git(project, "add", "train_args.py")
    git(project, "commit", "-q", "-m", "args")

    result = gitexp("run", "--", sys.executable, "train_args.py", "--auth", token)

    assert result.exit_code == 0, result.output
    run_id = run_ids(project)[0]
    record = {
        name: git(project, "show", f"gitexp/runs:experiments/{run_id}/{name}")
        for name in ("config.yaml", "run.yaml")
    }
    assert token not in record["config.yaml"] and token not in record["run.yaml"]
    config = yamlio.load(record["config.yaml"], "config.yaml")
    assert (config["auth"], config["lr"]) == (REDACTED, 0.1)
    run = yamlio.load(record["run.yaml"], "run.yaml")
    assert {"where": "config", "name": "auth", "reason": "secret key name"} in run["redacted"]
