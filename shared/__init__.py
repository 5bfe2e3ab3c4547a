"""The shared core of `verticals`: parts every vertical composes.

Nothing heavy is imported here, so `verticals --help` stays instant. Import the submodules
you need (`shared.training`, `shared.serving`, ...) where you use them.
"""

from __future__ import annotations

__version__ = "0.1.0"
