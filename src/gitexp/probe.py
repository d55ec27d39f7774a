"""Describe the Python interpreter that runs this file, as JSON on stdout.

Run by *the training command's* interpreter, not gitexp's, so it must use the standard
library only and import nothing it describes: torch is read from its files, not imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import sys


def _torch() -> dict[str, str] | None:
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    info: dict[str, str] = {}
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "version.py")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for key, name in (("__version__", "version"), ("cuda", "cuda"), ("hip", "hip")):
                pattern = r"^" + key + r"\s*(?::\s*\S+\s*)?=\s*['\"]([^'\"]*)['\"]"
                found = re.search(pattern, text, re.M)
                if found:
                    info[name] = found.group(1)
            break
    return info or None


def distributions() -> list[str]:
    """`name==version` of every installed distribution, read from folder names alone.

    Reading each distribution's METADATA file (importlib.metadata) costs tens of
    milliseconds; the `<name>-<version>.dist-info` folder names say the same.
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


def describe() -> dict[str, object]:
    libc = platform.libc_ver()
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "libc": f"{libc[0]} {libc[1]}" if libc[0] else None,
        },
        "packages": distributions(),
        "torch": _torch(),
    }


if __name__ == "__main__":
    json.dump(describe(), sys.stdout)
