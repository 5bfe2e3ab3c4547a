"""The shared core of `verticals`: parts every vertical composes.

Nothing heavy is imported here, so `verticals --help` stays instant. Import the submodules
you need (`shared.training`, `shared.serving`, ...) where you use them.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(artifact_dir, **settings):
    """Loads any artifact folder for prediction: `shared.load(dir).predict(rows)`.

    The vertical is read from the folder's `manifest.json`; `settings` override the deployment
    settings (`device="cuda"`, `max_batch_size=64`, ...) that otherwise come from `VERTICALS_*`
    environment variables. See `shared.registry.load_artifact`.
    """
    from shared.registry import load_artifact

    return load_artifact(artifact_dir, **settings)
