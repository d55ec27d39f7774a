"""Keeping secrets out of records: which files to leave out, which values to redact.

Two sources of rules. detect-secrets (Yelp) supplies its maintained token rules (AWS, GitHub,
GitLab, Slack, Stripe, JWT, private keys, …): importing it takes about a quarter of a second,
more than `gitexp run` may spend, so its rules are read from the installed package once per
version into a small cache and run here, and only on text that holds a run of ten letters and
digits, which every one of them needs. Our own rules cover what a rule set for source files
does not: secret names (`--auth`, `wandb.token`, `creds.json`), credentials in URLs,
`Authorization:` and `Bearer` values, key blocks, random-looking tokens with no known format,
and the repository's own names and patterns (`.gitexp.yaml`, `secrets:`).

A redacted value becomes `REDACTED`; what was redacted or left out is named with a reason,
never with the value.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.util
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.argv import is_option
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError
from gitexp.record import Redaction

REDACTED = "<redacted>"
SCAN_LIMIT = 1024 * 1024  # untracked files larger than this are judged by name only
LOOKS_SECRET = "looks like a secret"
_NAMES_SETTING = ".gitexp.yaml secrets.names"
_PATTERNS_SETTING = ".gitexp.yaml secrets.patterns"
_LISTED_LINES = 20  # lines of output.log named in its note; the rest are counted


class _Lazy:
    """A regular expression compiled when first used: `gitexp run -- cmd` compiles only the
    few it needs, not the dozen that a key block or an untracked file calls for."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._pattern, self._flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._pattern, self._flags)
        return self._compiled

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.search(text, pos)

    def match(self, text: str) -> re.Match[str] | None:
        return self.compiled.match(text)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.compiled.fullmatch(text)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.compiled.finditer(text)

    def findall(self, text: str) -> list[Any]:
        return self.compiled.findall(text)

    def split(self, text: str) -> list[str]:
        return self.compiled.split(text)


@dataclass(frozen=True)
class SecretRules:
    """What a repository adds to the built-in rules: `.gitexp.yaml` `secrets:`.

    `names` are glob patterns for option names, config keys and file names (`*_pin`,
    `vault.yaml`); `patterns` are regular expressions for values (the match is redacted, or
    its first group when it has one).
    """

    names: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


NO_RULES = SecretRules()


def check_pattern(pattern: str) -> str | None:
    """Why `pattern` cannot serve in `secrets.patterns`, or None when it can."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        return f"is not a valid regular expression ({e})"
    if compiled.match("") is not None:
        return "matches the empty string, so it would redact everything"
    return None


# --- names ------------------------------------------------------------------------------

# A name's parts: `HF_API_KEY`, `apiKey`, `wandb.token`, `--pass-phrase` → hf api key, …
_PART = _Lazy(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_STRONG = frozenset(
    {
        "secret", "secrets", "password", "passwords", "passwd", "pwd", "passphrase", "credential",
        "credentials", "creds", "cred", "auth", "oauth", "authorization", "apikey", "apikeys",
        "accesskey", "secretkey", "privatekey", "authtoken", "accesstoken", "refreshtoken",
        "bearer", "cookie", "cookies", "htpasswd", "pgpass", "contrasena",
    }
)  # fmt: skip
# `api_key`, `aws_access_key_id`, `ssh-key`: a key of this kind is a credential, while
# `sort_key` or `key` is one only when its value looks like a token (and so for `pass`).
_KEY_KINDS = frozenset(
    {
        "api", "access", "secret", "private", "priv", "ssh", "signing", "sign", "encryption",
        "enc", "master", "license", "licence", "client", "service", "account", "subscription",
        "auth", "deploy", "session", "app", "hmac", "db", "database",
    }
)  # fmt: skip
_PASS_KINDS = frozenset({"db", "database", "key"})
# `pad_token`, `max_token_len`, `token_id` are about a tokenizer's tokens, not credentials.
_TOKEN_KINDS = frozenset(
    {
        "pad", "bos", "eos", "unk", "sep", "cls", "mask", "start", "end", "special", "added",
        "max", "min", "num", "n", "total", "new", "prefix", "suffix", "image", "img", "video",
        "audio", "vision", "decoder", "encoder", "sot", "eot", "eod", "bot", "eom", "first",
        "last", "per", "vocab", "sample", "output", "input",
    }
)  # fmt: skip
_TOKEN_AFTER = frozenset(
    {
        "id", "ids", "type", "types", "len", "length", "count", "counts", "limit", "budget",
        "size", "index", "dropout", "embedding", "embeddings", "dim",
    }
)  # fmt: skip


def _parts(name: str) -> list[str]:
    return [part.lower() for part in _PART.findall(name)]


def _name_strength(name: str, rules: SecretRules) -> str | None:
    """`strong` when a name says its value is secret, `weak` when it may be, else None."""
    if rules.names and _named_by_user(name, rules):
        return "user"
    parts = _parts(name)
    weak = False
    for i, part in enumerate(parts):
        before = parts[i - 1] if i else ""
        after = parts[i + 1] if i + 1 < len(parts) else ""
        if part in _STRONG:
            return "strong"
        if part == "token" and before not in _TOKEN_KINDS and after not in _TOKEN_AFTER:
            return "strong"
        if part == "key" and before in _KEY_KINDS:
            return "strong"
        if part == "pass" and before in _PASS_KINDS:
            return "strong"
        weak = weak or part == "pass" or (part == "key" and not after)
    return "weak" if weak else None


def _named_by_user(name: str, rules: SecretRules) -> bool:
    folded = name.lower()
    leaf = folded.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(folded, glob.lower()) or fnmatch.fnmatchcase(leaf, glob.lower())
        for glob in rules.names
    )


def _name_reason(strength: str, kind: str) -> str:
    return f"named in {_NAMES_SETTING}" if strength == "user" else f"secret {kind} name"


# --- files ------------------------------------------------------------------------------

_FILE_NAMES = frozenset(
    {
        ".netrc", "_netrc", ".pypirc", ".npmrc", ".htpasswd", ".pgpass", ".git-credentials",
        ".dockerconfigjson", ".dockercfg", ".my.cnf", ".boto", ".s3cfg", ".vault-token",
        "kubeconfig", "credentials", "credentials.db", "access_tokens.db", "kaggle.json",
        "application_default_credentials.json", "terraform.tfvars",
    }
)  # fmt: skip
_FILE_PATHS = (".aws/credentials", ".kube/config", ".docker/config.json", "huggingface/token",
               "gh/hosts.yml", "gcloud/legacy_credentials")  # fmt: skip
_FILE_PATTERN = _Lazy(
    r"(\.env(rc|[._-].*)?|id_[A-Za-z0-9_-]+(\.pub)?|.*kubeconfig.*|.*service[-_]?account.*\.json"
    r"|.*\.(pem|key|p12|pfx|jks|keystore|ppk|p8|kdbx|ovpn|tfvars|tfvars\.json|tfstate"
    r"|tfstate\.backup))",
    re.IGNORECASE,
)
# Files that hold settings rather than code: a secret word in their name gives them away
# (`creds.json`, `config_secret.yaml`, `gcp-key.json`); `auth.py` is code and stays.
_SETTINGS_SUFFIXES = frozenset(
    {
        "", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".txt", ".properties",
        ".xml", ".env",
    }
)  # fmt: skip


def _is_settings_file(path: str) -> bool:
    return os.path.splitext(os.path.basename(path))[1].lower() in _SETTINGS_SUFFIXES


def name_reason(path: str, rules: SecretRules = NO_RULES) -> str | None:
    """Why a file's name alone keeps it out of a snapshot, or None."""
    base = os.path.basename(path)
    folded = path.lower()
    if base.lower() in _FILE_NAMES or _FILE_PATTERN.fullmatch(base):
        return LOOKS_SECRET
    if any(
        folded == p or folded.endswith("/" + p) or f"/{p}/" in f"/{folded}" for p in _FILE_PATHS
    ):
        return LOOKS_SECRET
    if rules.names and (_named_by_user(path, rules) or _named_by_user(base, rules)):
        return f"{LOOKS_SECRET}: named in {_NAMES_SETTING}"
    if _is_settings_file(base):
        stem = base.split(".")[0] or base
        if _name_strength(stem, NO_RULES) == "strong" or _parts(stem)[-1:] == ["key"]:
            return LOOKS_SECRET
    return None


def left_out_reason(path: str, location: Path | None, rules: SecretRules = NO_RULES) -> str | None:
    """Why a new file must stay out of a snapshot, or None when it may go in.

    By name first; then, for a regular file of at most SCAN_LIMIT bytes that is not binary,
    by content: a key block, a token detect-secrets knows, a match of the repository's
    patterns, or a value under a secret name (any value in a settings file, a quoted
    token-like one in code).
    """
    reason = name_reason(path, rules)
    if reason or location is None:
        return reason
    try:
        if not location.is_file() or location.is_symlink():
            return None  # a link's snapshot holds where it points, never what it points to
        with location.open("rb") as stream:
            data = stream.read(SCAN_LIMIT + 1)
    except OSError:
        return None  # the snapshot says it could not read it
    if len(data) > SCAN_LIMIT or b"\0" in data[:8000]:
        return None
    found = content_reason(data.decode("utf-8", "replace"), _is_settings_file(path), rules)
    return f"holds a secret: {found}" if found else None


def content_reason(text: str, settings_file: bool, rules: SecretRules = NO_RULES) -> str | None:
    """What kind of secret `text` holds (never the secret itself), or None."""
    if _KEY_BLOCK_START.search(text):
        return "private key"
    for pattern in _user_patterns(rules):
        if any(m.end() > m.start() for m in pattern.finditer(text)):
            return f"matches {_PATTERNS_SETTING}"
    if _DETECT_GATE.search(text):
        for rule in _detect_secrets_rules().candidates(text):
            if rule.pattern.search(text):
                return rule.kind
    for line in text.splitlines() if rules.names or _may_name_secret(text) else ():
        if not rules.names and not _may_name_secret(line):
            continue
        for match in _ASSIGNMENT.finditer(line):
            name, value = match["name"], _unquoted(match["value"])
            strength = _name_strength(name, rules)
            if strength is None or _placeholder(value):
                continue
            if strength == "weak" or not settings_file:  # in code, only a literal token
                quoted = match["value"][:1] in "\"'`"
                if not _token_shaped(value) or not (quoted or settings_file):
                    continue
            return f"a value for `{name}`"
    return None


# --- detect-secrets ---------------------------------------------------------------------

# Every token rule of detect-secrets needs ten letters and digits in a row; text without
# them is not even handed to its rules (nor are the rules loaded).
_DETECT_GATE = _Lazy(r"[A-Za-z0-9]{10}")
_UNUSED_PLUGINS = frozenset({"IPPublicDetector"})  # an address is not a credential
_CACHE_FORMAT = 2


def _detect_secrets_version() -> str:
    spec = importlib.util.find_spec("detect_secrets")
    if spec is None or not spec.submodule_search_locations:
        raise GitexpError(
            "detect-secrets is not installed, and gitexp needs it to keep secrets out of "
            "records; reinstall gitexp (`pip install gitexp`) or `pip install detect-secrets`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    try:
        text = (folder / "__version__.py").read_text()
    except OSError:
        text = ""
    found = re.search(r"""VERSION\s*=\s*['"]([^'"]+)['"]""", text)
    return found[1] if found else "unknown"


def _cache_file(version: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", version)
    return Path(root) / "gitexp" / f"detect-secrets-{safe}.json"


@dataclass(frozen=True)
class _Rule:
    """One detect-secrets rule, and strings one of which any match holds (None: unknown)."""

    kind: str
    pattern: re.Pattern[str]
    needs: tuple[str, ...] | None  # lowercased when the rule ignores case
    folded: bool  # the rule ignores case


class _RuleSet:
    """detect-secrets' rules, and which of them a text may match (a cheap look first)."""

    def __init__(self, rules: Sequence[_Rule]) -> None:
        self.rules = tuple(rules)
        self._always = [i for i, rule in enumerate(rules) if rule.needs is None]
        self._needs: dict[tuple[str, bool], list[int]] = {}
        for i, rule in enumerate(rules):
            for needed in rule.needs or ():
                self._needs.setdefault((needed, rule.folded), []).append(i)

    def candidates(self, text: str) -> list[_Rule]:
        """The rules that may match `text`: those whose needed strings it holds."""
        lower = text.lower()
        chosen = set(self._always)
        for (needed, folded), indices in self._needs.items():
            if needed in (lower if folded else text):
                chosen.update(indices)
        return [self.rules[i] for i in sorted(chosen)]


def _rules_from_package() -> list[tuple[str, str, int, list[str] | None]]:
    """Every regular-expression rule of the installed detect-secrets: type, regex, flags and
    the strings one of which it needs."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    found = []
    plugins: dict[str, type] = get_mapping_from_secret_type_to_class()
    for secret_type, plugin in sorted(plugins.items()):
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ not in _UNUSED_PLUGINS:
            for regex in plugin().denylist:
                needs = _needed_strings(regex.pattern, regex.flags)
                found.append((str(secret_type), regex.pattern, int(regex.flags), needs))
    return found


def _needed_strings(pattern: str, flags: int) -> list[str] | None:
    """Strings of two or more characters one of which every match of `pattern` contains, read
    from its parse tree; None when there are none (or the tree cannot be read)."""
    try:
        try:
            parser: Any = importlib.import_module("re._parser")
            ops: Any = importlib.import_module("re._constants")
        except ImportError:  # pragma: no cover - Python 3.10
            parser = importlib.import_module("sre_parse")
            ops = importlib.import_module("sre_constants")
        tree = parser.parse(pattern, flags)
    except Exception:
        return None

    def exact(items: Any) -> set[str] | None:
        """Every string a sequence matches, when they are few and literal; else None."""
        results = {""}
        for op, arg in items:
            if op is ops.LITERAL:
                options: set[str] | None = {chr(arg)}
            elif op is ops.AT:
                options = {""}
            elif op is ops.SUBPATTERN and not arg[1] and not arg[2]:
                options = exact(arg[3].data)
            elif op is ops.BRANCH:
                alternatives = [exact(branch.data) for branch in arg[1]]
                options = None if None in alternatives else set().union(*alternatives)  # type: ignore[arg-type]
            else:
                return None
            if options is None:
                return None
            results = {a + b for a in results for b in options}
            if len(results) > 64:
                return None
        return results

    best: list[set[str]] = []

    def required(items: Any) -> None:
        run = {""}
        for op, arg in [*items, (None, None)]:
            found = exact([(op, arg)]) if op is not None else None
            if found is not None and len({a + b for a in run for b in found}) <= 64:
                run = {a + b for a in run for b in found}
                continue
            best.append(run)
            run = found if found is not None else {""}
            if op is ops.SUBPATTERN and not arg[1] and not arg[2]:  # not under other flags
                required(arg[3].data)
            elif op in (ops.MAX_REPEAT, ops.MIN_REPEAT) and arg[0] >= 1:
                required(arg[2].data)

    required(tree.data)
    fold = flags & re.IGNORECASE
    usable = [
        {text.lower() if fold else text for text in found}
        for found in best
        if found and min(map(len, found)) >= 2
    ]
    if not usable:
        return None
    chosen = max(usable, key=lambda found: (min(map(len, found)), -len(found)))
    # Containing a longer one means containing the shorter one it holds: keep the shortest.
    return sorted(t for t in chosen if not any(o != t and o in t for o in chosen))


def _read_cache(path: Path, version: str) -> list[tuple[str, str, int, list[str] | None]] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return None
    if data.get("detect_secrets") != version or not isinstance(data.get("rules"), list):
        return None
    rules = data["rules"]

    def valid(rule: Any) -> bool:
        return (
            isinstance(rule, list)
            and len(rule) == 4
            and isinstance(rule[0], str)
            and isinstance(rule[1], str)
            and isinstance(rule[2], int)
            and (rule[3] is None or (isinstance(rule[3], list) and all(
                isinstance(t, str) and t for t in rule[3])))
        )  # fmt: skip

    if not rules or not all(valid(rule) for rule in rules):
        return None
    return [(r[0], r[1], r[2], r[3]) for r in rules]


@functools.lru_cache(maxsize=1)
def _detect_secrets_rules() -> _RuleSet:
    """detect-secrets' rules, compiled: from the cache, else read from the package and cached."""
    version = _detect_secrets_version()
    path = _cache_file(version)
    rules = _read_cache(path, version)
    if rules is not None:
        try:
            return _compiled(rules)
        except re.error:
            pass  # a damaged cache: read the package again
    rules = _rules_from_package()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": _CACHE_FORMAT, "detect_secrets": version, "rules": rules}
        replace_file(path, json.dumps(data, indent=0).encode())
    except OSError:
        pass  # no cache: the next process reads the package again
    return _compiled(rules)


def _compiled(rules: list[tuple[str, str, int, list[str] | None]]) -> _RuleSet:
    return _RuleSet(
        [
            _Rule(
                kind,
                re.compile(pattern, flags),
                tuple(needs) if needs else None,
                bool(flags & re.IGNORECASE),
            )
            for kind, pattern, flags, needs in rules
        ]
    )


def _detected_span(match: re.Match[str]) -> tuple[int, int]:
    """The secret inside a rule's match: its longest group when that is token-sized (the
    rule matched context around it), else the match without the delimiters some rules take."""
    groups = [match.span(i) for i in range(1, (match.re.groups or 0) + 1) if match.group(i)]
    longest = max(groups, key=lambda span: span[1] - span[0], default=None)
    if longest and longest[1] - longest[0] >= 12:
        return longest
    start, end = match.span()
    text = match.string
    while start < end and text[start] in " \t\"'=:":
        start += 1
    while end > start and text[end - 1] in " \t\"'":
        end -= 1
    return start, end


# --- values -----------------------------------------------------------------------------

_URL_USERINFO = _Lazy(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]*:[^\s/?#@]+@")
_AUTH_HEADER = _Lazy(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic|token|digest|negotiate|ntlm|apikey|sso-key)\s+)?)([^\s\"',;]+)"
)
_BEARER = _Lazy(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{8,})")
_KEY_BLOCK_START = _Lazy(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|PuTTY-User-Key-File")
_KEY_BLOCK_END = _Lazy(r"-----END[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|Private-MAC:")
_KEY_BLOCK = _Lazy(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?"
    r"(?:-----END[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)",
    re.DOTALL,
)
# A run that might be a token; `_` and `-` (base64url) and `/` `+` (base64) may sit inside.
_RUN = _Lazy(r"[A-Za-z0-9+/_-]{20,}")
_SEPARATORS = _Lazy(r"[+/_-]")
_HEX_OR_DIGITS = _Lazy(r"[0-9a-fA-F]+")
_WORD = _Lazy(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_VOWEL = _Lazy(r"[aeiouyAEIOUY]")


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character, the measure detect-secrets uses."""
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


def _wordlike(text: str) -> float:
    """The share of letters in pronounceable words of three or more (`Instruct`, `Norm`)."""
    letters = sum(c.isalpha() for c in text)
    if not letters:
        return 1.0
    covered = sum(len(w) for w in _WORD.findall(text) if len(w) >= 3 and _VOWEL.search(w))
    return covered / letters


def looks_random(run: str) -> bool:
    """Whether a run of letters and digits is a token rather than a name people chose.

    Tokens are random: high entropy and few pronounceable words. Hexadecimal and numeric
    pieces are left aside: commit hashes, digests and UUIDs name code and data, and a
    configuration is full of them; a hex secret is caught by its name. Pieces of a few
    letters joined by `_` or `-` are names people chose (`ckpt_s3_b128_lr3e4`), unless one
    of them is a token by itself (`sk-proj-…`).
    """
    pieces = [p for p in re.split(r"[_-]", run) if p]
    if len(pieces) > 1 and any(len(p) >= 20 and _random_core(p) for p in pieces):
        return True
    if len(pieces) >= 3 and sorted(map(len, pieces))[len(pieces) // 2] < 8:
        return False
    return _random_core(run)


def _random_core(run: str) -> bool:
    pieces = [p for p in _SEPARATORS.split(run) if p and not _HEX_OR_DIGITS.fullmatch(p)]
    core = "".join(pieces)
    if len(core) < 20:
        return False
    kinds = any(c.isupper() for c in core) + any(c.islower() for c in core)
    if kinds + any(c.isdigit() for c in core) < 2:
        return False
    wordlike, entropy = _wordlike(core), _entropy(core)
    threshold = math.log2(min(len(core), 40)) - 1.0  # a random string's, less a margin
    return (
        wordlike < 0.5
        or (entropy >= threshold and wordlike < 0.75)
        or (entropy >= threshold + 0.2 and wordlike < 0.9 and len(core) >= 28)  # names: less
    )


def _token_shaped(value: str) -> bool:
    """A value that could be a credential: one word of 8 or more, letters and digits both."""
    return (
        len(value) >= 8
        and not any(c.isspace() for c in value)
        and any(c.isalpha() for c in value)
        and any(c.isdigit() for c in value)
    ) or looks_random(value)


_PLACEHOLDER = _Lazy(
    r"(?i)(|none|null|nil|true|false|yes|no|~|\*{3,}|x{3,}|redacted|<[^>]*>|\$\{?.*|\{\{.*\}\}|%\(.*"
    r"|os\.environ.*|os\.getenv.*|getenv.*|env\(.*)"
)


def _placeholder(value: str) -> bool:
    """A value that stands for a secret held elsewhere: `${TOKEN}`, `<your key>`, `null`."""
    return _PLACEHOLDER.fullmatch(value.strip()) is not None or REDACTED in value


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        return value[1:-1]
    return value


@functools.lru_cache(maxsize=8)
def _user_patterns(rules: SecretRules) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in rules.patterns)


class _Redactor:
    """Replaces spans of a text with REDACTED, noting why for each."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.reasons: list[str] = []

    def sub(self, pattern: re.Pattern[str] | _Lazy, reason: str, span: Any = None) -> None:
        """Redact each match of `pattern`: the span `span(match)` gives, or the whole match."""
        pieces: list[str] = []
        last = 0
        for match in pattern.finditer(self.text):
            start, end = span(match) if span is not None else match.span()
            if end <= start or start < last or REDACTED in match.group():
                continue
            pieces += [self.text[last:start], REDACTED]
            last = end
            self.reasons.append(reason)
        if pieces:
            self.text = "".join([*pieces, self.text[last:]])

    def user_patterns(self, rules: SecretRules) -> None:
        for pattern in _user_patterns(rules):
            self.sub(pattern, f"matches {_PATTERNS_SETTING}", span=_user_span)

    def values(self) -> None:
        """The rules that need no name: URLs, headers, key blocks, known and random tokens.

        Each runs only where a cheap look says it may match: most lines of a log hold none.
        """
        text = self.text
        lower = text.lower()
        if "PRIVATE KEY" in text:
            self.sub(_KEY_BLOCK, "private key")
        if "://" in text and "@" in text:
            self.sub(_URL_USERINFO, "credentials in a URL", span=lambda m: (m.end(1), m.end() - 1))
        if "authoriz" in lower:
            self.sub(_AUTH_HEADER, "authorization header", span=lambda m: m.span(2))
        if "bearer" in lower:
            self.sub(_BEARER, "bearer token", span=lambda m: m.span(2))
        if _DETECT_GATE.search(self.text):
            for rule in _detect_secrets_rules().candidates(self.text):
                self.sub(rule.pattern, rule.kind, span=_detected_span)
            self.sub(_RUN, "high-entropy string", span=_random_span)


def _user_span(match: re.Match[str]) -> tuple[int, int]:
    return match.span(1) if match.re.groups and match.group(1) else match.span()


def _random_span(match: re.Match[str]) -> tuple[int, int]:
    return match.span() if looks_random(match.group()) else (0, 0)


def redact_value(text: str, rules: SecretRules = NO_RULES) -> tuple[str, list[str]]:
    """`text` with every secret its content gives away redacted, and why for each."""
    redactor = _Redactor(text)
    redactor.user_patterns(rules)
    redactor.values()
    return redactor.text, redactor.reasons


# --- lines of output --------------------------------------------------------------------

# Words that may name a secret: lines without any skip the name rules below.
_HINTS = ("secret", "pass", "pwd", "token", "auth", "cred", "key", "cookie", "bearer")


def _may_name_secret(text: str) -> bool:
    lower = text.lower()
    return any(hint in lower for hint in _HINTS)


# `token=…`, `"password": "…"`, `api_key: …`, `auth='…'` (argparse's Namespace)
_ASSIGNMENT = _Lazy(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)[\"'\]]{0,2}[ \t]*(?::=|=>|=|:)[ \t]*"
    r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s,;'\"}\])]+)"
)
# `--password hunter2`, `-auth X`
_OPTION = _Lazy(r"(?<![\w-])--?(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)[ \t]+(?P<value>[^\s-]\S*)")


def _named_span(match: re.Match[str], rules: SecretRules) -> tuple[int, int]:
    """The value's span when the name says it is secret (and its value is not a stand-in)."""
    name, value = match["name"], match["value"]
    strength = _name_strength(name, rules)
    if strength is None or name.lower().endswith("authorization"):
        return 0, 0
    inner = _unquoted(value)
    if _placeholder(inner) or (strength == "weak" and not _token_shaped(inner)):
        return 0, 0
    start, end = match.span("value")
    if inner is not value:
        start, end = start + 1, end - 1
    return start, end


def redact_text_line(line: str, rules: SecretRules = NO_RULES) -> tuple[str, list[str]]:
    """One line of output with its secrets redacted, and why for each."""
    redactor = _Redactor(line)
    redactor.user_patterns(rules)
    redactor.values()
    if rules.names or _may_name_secret(redactor.text):
        reason = "secret name"
        redactor.sub(_ASSIGNMENT, reason, span=lambda m: _named_span(m, rules))
        redactor.sub(_OPTION, reason, span=lambda m: _named_span(m, rules))
    return redactor.text, redactor.reasons


def redact_log(data: bytes, rules: SecretRules = NO_RULES) -> tuple[bytes, list[tuple[int, str]]]:
    """A log with its secrets redacted line by line, and (line number, reason) for each.

    The lines inside a private key block are redacted whole. Bytes that are not UTF-8 are
    kept as they were.
    """
    found: list[tuple[int, str]] = []
    lines = data.split(b"\n")
    in_key = 0  # lines left to redact in a key block whose end is not yet seen
    for number, raw in enumerate(lines, start=1):
        if not raw:
            continue
        line = raw.decode("utf-8", "surrogateescape")
        if in_key:
            ended = _KEY_BLOCK_END.search(line)
            in_key = 0 if ended else in_key - 1
            lines[number - 1] = (line[ended.start() :] if ended else REDACTED).encode(
                "utf-8", "surrogateescape"
            )
            continue
        start = _KEY_BLOCK_START.search(line)
        header = ""
        if start and not _KEY_BLOCK_END.search(line, start.end()):
            in_key = 200  # a 16384-bit RSA key has fewer lines; a lost end stops here
            found.append((number, "private key"))
            line, header = line[: start.start()], line[start.start() : start.end()]
        new, reasons = redact_text_line(line, rules)
        found += [(number, reason) for reason in dict.fromkeys(reasons)]
        if new != line or header:
            lines[number - 1] = (new + header).encode("utf-8", "surrogateescape")
    return b"\n".join(lines), found


def log_note(found: Sequence[tuple[int, str]]) -> bytes:
    """The line that ends a redacted output.log: which lines lost what (never the values)."""
    if not found:
        return b""
    named = "; ".join(f"line {n} ({reason})" for n, reason in found[:_LISTED_LINES])
    more = len(found) - _LISTED_LINES
    rest = f"; and {more} more" if more > 0 else ""
    return f"\n[gitexp: secrets redacted from this log as {REDACTED}: {named}{rest}]\n".encode()


# --- command lines and configuration ----------------------------------------------------

_ASSIGNED_NAME = _Lazy(r"[+~]*([A-Za-z_][A-Za-z0-9_.\-]*)")


def redact_argv(
    words: Sequence[str], rules: SecretRules = NO_RULES
) -> tuple[list[str], list[Redaction]]:
    """A command line with its secrets redacted, and what was redacted.

    By name: the value of `--token X`, `--auth=X`, `HF_API_KEY=X`, `wandb.api_key=X`
    (a `key` or `pass` name only when the value looks like a token). By value: URL
    credentials, `Authorization:` and `Bearer` values, known and random-looking tokens.
    """
    result: list[str] = []
    found: list[Redaction] = []
    secret_next: tuple[str, str] | None = None  # the option whose value comes next
    for index, word in enumerate(words):
        if secret_next and not is_option(word):
            option, kind = secret_next
            secret_next = None
            if kind != "weak" or _token_shaped(word):
                result.append(REDACTED)
                found.append(Redaction("command", option, _name_reason(kind, "option")))
                continue
        secret_next = None
        name_part, has_value, value = word.partition("=")
        if is_option(word) or has_value:
            name = _ASSIGNED_NAME.fullmatch(name_part.lstrip("-"))
            strength = _name_strength(name[1], rules) if name else None
            if strength and has_value:
                if not _placeholder(value) and (strength != "weak" or _token_shaped(value)):
                    result.append(f"{name_part}={REDACTED}")
                    found.append(Redaction("command", name_part, _name_reason(strength, "option")))
                    continue
            elif strength and is_option(word):
                secret_next = (word, strength)
                result.append(word)
                continue
        label = _label(words, index)
        redacted, reasons = redact_value(word, rules)
        found += [Redaction("command", label, reason) for reason in dict.fromkeys(reasons)]
        result.append(redacted)
    return result, _unique(found)


def _label(words: Sequence[str], index: int) -> str:
    """How a redaction names a word: the option it belongs to, else its position."""
    word = words[index]
    name, assigned, _ = word.partition("=")
    if is_option(word) or (assigned and _ASSIGNED_NAME.fullmatch(name)):
        return name
    if index and is_option(words[index - 1]) and "=" not in words[index - 1]:
        return words[index - 1]
    return f"argument {index}"


def redact_config(
    config: Mapping[str, Any], rules: SecretRules = NO_RULES
) -> tuple[dict[str, Any], list[Redaction]]:
    """A copy of a configuration with its secrets redacted, and what was redacted.

    By name, on the dotted key (`wandb.token`, `db.password`, every leaf under `secrets:`);
    by value, on every string. Booleans and nulls are never secrets; values already
    redacted (the command's own options, under `argv`) are left as they are.
    """
    found: list[Redaction] = []

    def visit(value: Any, key: str, inherited: str | None) -> Any:
        strength = inherited or (_name_strength(key, rules) if key else None)
        if isinstance(value, Mapping):
            under = strength if strength != "weak" else None  # every leaf under `secrets:`
            return {k: visit(v, f"{key}.{k}" if key else str(k), under) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(v, f"{key}[{i}]", strength) for i, v in enumerate(value)]
        if isinstance(value, bool) or value is None or value == REDACTED:
            return value
        if isinstance(value, int):  # `password: 123456` or under `secrets:`, not `n_auth: 3`
            leaf = re.sub(r"\[\d+\]$", "", key).rsplit(".", 1)[-1]
            strength = inherited or _name_strength(leaf, rules)
        if strength and isinstance(value, (str, int)):
            text = str(value)
            if not _placeholder(text) and (strength != "weak" or _token_shaped(text)):
                found.append(Redaction("config", key, _name_reason(strength, "key")))
                return REDACTED
        if isinstance(value, str):
            redacted, reasons = redact_value(value, rules)
            found.extend(Redaction("config", key, reason) for reason in dict.fromkeys(reasons))
            return redacted
        return value

    redacted: dict[str, Any] = visit(config, "", None)
    return redacted, _unique(found)


def _unique(found: Iterable[Redaction]) -> list[Redaction]:
    return list(dict.fromkeys(found))
