"""The model card (`README.md`) of an artifact, generated from its manifest.

It opens with a YAML metadata header (as Hugging Face model cards do: library, tags, base model,
pipeline tag, metrics), then says how to use the folder: the CLI, the Python API, and every
standard library that opens a part of it. The core finds the standard parts by their files:

- `<dir>/modules.json`: a sentence-transformers folder;
- `<dir>/modeling_verticals.py`: a `shared.hf_modeling` classifier for the transformers Auto classes.

A vertical adds its own ways in through the manifest's `formats` list (`{"library", "code"}`),
e.g. how timm opens an image model.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import yaml


def model_card(manifest: dict[str, Any]) -> str:
    """A Markdown model card with a metadata header and usage snippets."""
    vertical = manifest["vertical"]
    formats = standard_formats(manifest.get("files", [])) + list(manifest.get("formats") or [])
    return "\n".join(
        [
            _front_matter(manifest, formats),
            f"# Model card: {vertical}",
            "",
            _facts(manifest),
            *_data_section(manifest.get("data_report")),
            "## Evaluation (held-out split)",
            "",
            _metrics_table(manifest.get("metrics") or {}),
            "",
            "## How to use",
            "",
            _usage(vertical, formats),
            "## Intended use and limits",
            "",
            f"Fine-tuned with `verticals train {vertical}` on the data fingerprinted above. The",
            "metrics hold for data like that; check them on your own held-out data before relying",
            "on them.",
            "",
            "## Configuration",
            "",
            "```json",
            json.dumps(manifest.get("config", {}), indent=2, default=str),
            "```",
            "",
        ]
    )


def standard_formats(files: list[str]) -> list[dict[str, str]]:
    """Snippets for the parts of an artifact that standard libraries open, found by file name."""
    found = []
    for name in sorted(files):
        path = PurePosixPath(name)
        folder = str(path.parent)
        if path.name == "modules.json":
            found.append(
                {
                    "library": "sentence-transformers",
                    "pipeline_tag": "sentence-similarity",
                    "code": "from sentence_transformers import SentenceTransformer\n\n"
                    f'encoder = SentenceTransformer("ARTIFACT/{folder}")\n'
                    'embeddings = encoder.encode(["a sentence"], normalize_embeddings=True)',
                }
            )
        elif path.name == "modeling_verticals.py":
            found.append(
                {
                    "library": "transformers",
                    "pipeline_tag": "text-classification",
                    "code": "from transformers import pipeline\n\n"
                    "# mean pooling over the body, a linear head; the folder ships its model code\n"
                    f'classify = pipeline("text-classification", model="ARTIFACT/{folder}", '
                    "trust_remote_code=True)\n"
                    'classify(["a sentence"])  # [{"label": ..., "score": ...}] with id2label\'s names',
                }
            )
    return found


def metric_text(name: str, value: Any) -> str:
    """A metric for the card: counts (`n_test`, `num_items`) as integers, rates to 4 places."""
    if isinstance(value, float) and name.startswith(("n_", "num_")) and value.is_integer():
        return str(int(value))
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _front_matter(manifest: dict[str, Any], formats: list[dict[str, str]]) -> str:
    metrics = {
        k: (int(v) if k.startswith(("n_", "num_")) and float(v).is_integer() else round(v, 4))
        for k, v in (manifest.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    meta = {
        "library_name": "verticals",
        "tags": ["verticals", manifest["vertical"]] + sorted({f["library"] for f in formats}),
        "base_model": _hub_name(manifest.get("model_name")),
        "pipeline_tag": next((f["pipeline_tag"] for f in formats if f.get("pipeline_tag")), None),
        "metrics": metrics or None,
        "verticals": {
            "vertical": manifest["vertical"],
            "model_name": manifest.get("model_name"),
            "artifact_format": manifest.get("format"),
            "created": manifest.get("created"),
            "data_fingerprint": manifest.get("data_fingerprint"),
        },
    }
    meta = {k: v for k, v in meta.items() if v is not None}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _hub_name(name: str | None) -> str | None:
    """The hub id of a packaged model's alias (`minilm`); a tiny random model has none."""
    from shared.models import EFFICIENTNET_ALIASES, MINILM_ALIASES, MPNET_ALIASES

    if not name or name.startswith("random:"):
        return None
    if name.lower() in MINILM_ALIASES:
        return "sentence-transformers/all-MiniLM-L6-v2"
    if name.lower() in MPNET_ALIASES:
        return "sentence-transformers/all-mpnet-base-v2"
    if name.lower() in EFFICIENTNET_ALIASES:  # packaged ImageNet weights, not a hub checkpoint
        return None
    return name


def _facts(manifest: dict[str, Any]) -> str:
    labels = manifest.get("label_map")
    label_text = (
        ", ".join(labels if isinstance(labels, list) else list(labels)) if labels else "n/a"
    )
    versions = ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
    training = manifest.get("training") or {}
    kept = (
        f"epoch {training['best_epoch']} of {training['epochs']} ({training['steps']} steps), "
        f"best on `{training['monitor']}` ({training['monitor_mode']}: {training['best']:.4g})"
        if training.get("best_epoch")
        else "n/a"
    )
    lines = [
        f"- **Base model:** `{manifest['model_name']}`",
        f"- **Created:** {manifest['created']}",
        f"- **Training data fingerprint:** `{manifest.get('data_fingerprint')}`",
        f"- **Labels:** {label_text}",
    ]
    recipe = manifest.get("recipe")
    if isinstance(recipe, dict) and recipe.get("recipe"):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in (recipe.get("scores") or {}).items())
        how = {"cv": f"{recipe.get('folds')}-fold cross-validation on the training rows"}.get(
            recipe.get("method"), recipe.get("method")
        )
        lines.append(
            f"- **Recipe:** {recipe['recipe']}, chosen by {how}"
            + (f" ({recipe.get('metric', 'score')}: {scores})" if scores else "")
        )
    rule = manifest.get("decision_rule")
    if isinstance(rule, dict) and rule.get("text"):
        lines.append(f"- **Decision rule:** {rule['text']}")
    lines += [f"- **Weights kept from:** {kept}", f"- **Libraries:** {versions}"]
    notes = [str(n) for n in manifest.get("warnings") or []]
    notes += [str(n) for n in (manifest.get("data_report") or {}).get("warnings") or []]
    calibration = manifest.get("calibration")
    if isinstance(calibration, dict):
        if calibration.get("reason"):
            lines.append(f"- **Calibration:** {calibration['reason']}")
        if calibration.get("small_validation_warning"):
            notes.append(str(calibration["small_validation_warning"]))
    lines += [f"- **Warning:** {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _data_section(report: dict[str, Any] | None) -> list[str]:
    """The training data as `train` read it: rows read, dropped and why, rows per split."""
    if not isinstance(report, dict):
        return []
    lines = ["## Training data", ""]
    lines.append(
        f"Read {report.get('rows_read', 'n/a')} rows, used {report.get('rows_used', 'n/a')}."
    )
    dropped = report.get("dropped") or {}
    if dropped:
        lines += ["", "| dropped because | rows |", "|---|---|"]
        lines += [f"| {reason} | {n} |" for reason, n in dropped.items()]
    splits = report.get("splits") or {}
    if splits:
        lines += ["", "| split | rows | fixed by the split column | drawn |", "|---|---|---|---|"]
        lines += [
            f"| {name} | {info.get('rows', '')} | {info.get('fixed', '')} | {info.get('drawn', '')} |"
            for name, info in splits.items()
        ]
    return lines + [""]


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {metric_text(k, v)} |" for k, v in metrics.items())
    return f"| metric | value |\n|---|---|\n{rows or '| (none) | |'}"


def _usage(vertical: str, formats: list[dict[str, str]]) -> str:
    parts = [
        "`ARTIFACT` is this folder.",
        "",
        "```bash",
        f"verticals predict {vertical} --artifact ARTIFACT --input rows.csv",
        f"verticals evaluate {vertical} --artifact ARTIFACT --data labelled.csv",
        f"verticals serve {vertical} --artifact ARTIFACT   # API docs at /docs",
        "```",
        "",
        "```python",
        "import shared",
        "",
        'model = shared.load("ARTIFACT")  # the vertical is read from manifest.json',
        "model.predict(rows)  # rows: dicts in the vertical's input schema; one result each",
        "```",
        "",
    ]
    for fmt in formats:
        parts += [f"With {fmt['library']}:", "", "```python", fmt["code"], "```", ""]
    return "\n".join(parts)
