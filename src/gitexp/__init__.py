"""gitexp: a git-native experiment tracker.

Importing gitexp is cheap: torch, DVC and numpy load only when a feature needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
