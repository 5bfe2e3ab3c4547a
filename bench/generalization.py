"""Generalization suite: each vertical's default `verticals train` and `verticals evaluate` on every
public data set of `../shared/data`, against baselines measured in the same run.

Per data set only the data conversion (`bench.generalization_data`: the vertical's file format,
column and label mapping such as `columns.text=Title` or `label_map.0=normal`) and the protocol's
split (fixed `split` rows, an npz's arrays, the recommender's `split=...`) differ; the recipe,
epochs, learning rates and model are always the vertical's defaults. Both CLI steps run as
subprocesses, as a user would type them; "ours" is measured by `verticals evaluate` on the test
split only (a separate test file, or the test items the artifact's protocol holds out).

Baselines, fitted on the same training rows and tuned on the same validation rows:
- text classification: frozen MiniLM embeddings + logistic regression (C chosen on validation);
- FAQ retrieval: BM25 (bm25s) over the answers, and over the answers plus training questions;
- recommending: MostPopular, ItemKNN, and `implicit`'s ALS and BPR (grids tuned on validation);
- imaging: a linear probe (logistic regression) on the frozen backbone's pooled features.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m bench.generalization
    .venv/bin/python -m bench.generalization --only snips,retinamnist
    .venv/bin/python -m bench.generalization --quick --only atis     # smoke test, tiny caps
    .venv/bin/python -m bench.generalization --list

Writes `bench/results/generalization.json` one row per data set, rewritten after every data set
(a crash in one keeps the others; its error is in its row). With `--only`, the rows of the other
data sets already in the file are kept. `--quick` writes to `runs/generalization/quick/` only.
Every gap is ours minus the reference, positive when ours is better (for MSE, the reverse).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, ROOT, bench_parser, git_commit, hardware
from bench.generalization_baselines import (
    Metrics,
    faq_baselines,
    finance_baselines,
    imaging_baselines,
    intent_baselines,
    numbers,
    recommender_baselines,
    score_metrics,
)
from bench.generalization_data import (
    FULL_CAPS,
    QUICK,
    SEED,
    Caps,
    Prepared,
    atis,
    banking77,
    clinc150,
    financial_phrasebank,
    fiqa2018_task1,
    semeval2017_task5_headlines,
    sentfin,
    snips,
    stackfaq,
)
from bench.generalization_data_rec import (
    amazon_scientific_unisrec,
    lastfm_hetrec2011_2k,
    movietweetings_100k,
    movietweetings_100k_random,
    pneumoniamnist,
    retinamnist,
)

RESULT_PATH = RESULTS / "generalization.json"
WORK = ROOT / "runs" / "generalization"
LOWER_IS_BETTER = frozenset({"mse"})
LOG_TAIL_LINES = 25

CONVERTERS: dict[str, Callable[[Path, Caps], Prepared]] = {
    fn.__name__: fn
    for fn in (
        banking77,
        clinc150,
        snips,
        atis,
        stackfaq,
        financial_phrasebank,
        fiqa2018_task1,
        sentfin,
        semeval2017_task5_headlines,
        pneumoniamnist,
        retinamnist,
        movietweetings_100k,
        movietweetings_100k_random,
        lastfm_hetrec2011_2k,
        amazon_scientific_unisrec,
    )
}
"""Data set name -> converter, in the suite's order."""


def caps_for(name: str, quick: bool) -> Caps:
    """`QUICK` in quick mode, else the data set's full-run caps (none for most)."""
    return QUICK if quick else FULL_CAPS.get(name, Caps())


@dataclass(frozen=True)
class Anchor:
    """A published figure: who reached it, on which of our metric keys, and its value."""

    name: str
    metric: str
    value: float


@dataclass(frozen=True)
class Spec:
    """How one data set is scored: its vertical, the primary metric, ours' metrics from the
    evaluate report, the same-run baselines, and the published anchors."""

    vertical: str
    metric: str
    ours: Callable[[Metrics, Prepared, Path], Metrics]
    baselines: Callable[[Prepared, dict], dict[str, Metrics]]
    """`(prepared, manifest)` -> metrics per baseline; `manifest` is the artifact's (`{}` when
    training failed), for settings the vertical resolved from the data."""
    anchors: tuple[Anchor, ...] = ()


# ---------------------------------------------------------------------------- running the CLI


def verticals_cli() -> str:
    """The `verticals` entry point of this interpreter's environment (else the one on PATH)."""
    local = Path(sys.executable).parent / "verticals"
    return str(local) if local.exists() else (shutil.which("verticals") or "verticals")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` non-empty lines of a log (progress-bar carriage returns folded away)."""
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def run_cli(args: list[str], log: Path) -> None:
    """Runs `verticals ARGS`, appending its output to `log`.

    Raises:
        RuntimeError: with the command and the log's last lines when it exits non-zero.
    """
    command = [verticals_cli(), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("a", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        code = subprocess.run(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    if code != 0:
        raise RuntimeError(
            f"`verticals {' '.join(args[:2])}` exited {code}; log {log}:\n{log_tail(log)}"
        )


def train_and_evaluate(prepared: Prepared, work: Path) -> tuple[Metrics, dict[str, float]]:
    """`verticals train` then `verticals evaluate --json --out`: the report's metrics and the
    seconds of each step. What an earlier run left (artifact, report, logs) is removed first."""
    work.mkdir(parents=True, exist_ok=True)
    run, report = work / "run", work / "report"
    for path in (run, report):
        shutil.rmtree(path, ignore_errors=True)
    for log in work.glob("*.log"):
        log.unlink()
    started = time.perf_counter()
    train = ["train", prepared.vertical, "--data", str(prepared.train), "--out", str(run)]
    run_cli([*train, "--overwrite", *prepared.overrides], work / "train.log")
    trained = time.perf_counter()
    artifact = run / "artifact"
    evaluate = ["evaluate", prepared.vertical, "--artifact", str(artifact)]
    run_cli(
        [*evaluate, "--data", str(prepared.test), "--json", "--out", str(report)],
        work / "evaluate.log",
    )
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    timings = {"train": trained - started, "evaluate": time.perf_counter() - trained}
    return metrics, timings


# ---------------------------------------------------------------------------- ours, per vertical


def intent_ours(report: Metrics, prepared: Prepared, work: Path) -> Metrics:
    """Intent accuracy = the right intent chosen, handoff or not (`decision_accuracy`); also the
    accuracy with a handoff counted as a miss and the out-of-scope recall."""
    out = numbers(report)
    out["intent_accuracy"] = out.get("decision_accuracy", float("nan"))
    out["accuracy_with_handoff"] = out.get("accuracy", float("nan"))
    if "oos_handoff_recall" in out:
        out["oos_recall"] = out["oos_handoff_recall"]
    return out


def plain_ours(report: Metrics, prepared: Prepared, work: Path) -> Metrics:
    """The evaluate report's numbers as they are."""
    return numbers(report)


def finance_ours(report: Metrics, prepared: Prepared, work: Path) -> Metrics:
    """The evaluate report, plus (for scored data sets) the score metrics of `verticals predict`'s
    `score` against the gold score: the score head that `train` fits on the validation rows'
    gold scores where it kept one (see the manifest's `score_head`), else P(pos) - P(neg)."""
    out = numbers(report)
    test = prepared.tables["test"]
    if "score" not in test.columns:
        return out
    predictions = work / "predictions.jsonl"
    run_cli(
        [
            "predict",
            "finance_sentiment",
            "--artifact",
            str(work / "run" / "artifact"),
            "--input",
            str(prepared.test),
            "--output",
            str(predictions),
        ],
        work / "predict.log",
    )
    lines = predictions.read_text(encoding="utf-8").splitlines()
    scores = np.array([json.loads(line)["score"] for line in lines], dtype=np.float64)
    return out | score_metrics(scores, test["score"].to_numpy(dtype=np.float64))


def recommender_ours(report: Metrics, prepared: Prepared, work: Path) -> Metrics:
    """The served lists' metrics (`ranked_*`) under the baselines' names; `retrieval_*` (the
    towers alone) and `cold_*` kept as they are."""
    out = numbers(report)
    out |= {k.removeprefix("ranked_"): v for k, v in out.items() if k.startswith("ranked_")}
    return out


# ---------------------------------------------------------------------------- the suite

INTENT = Spec("customer_service", "intent_accuracy", intent_ours, intent_baselines)
FINANCE = Spec("finance_sentiment", "accuracy", finance_ours, finance_baselines)
IMAGING = Spec("medical_imaging", "auc", plain_ours, imaging_baselines)
RECOMMENDER = Spec("recommender", "ndcg_at_10", recommender_ours, recommender_baselines)


def with_anchors(spec: Spec, *anchors: Anchor, metric: str | None = None) -> Spec:
    """`spec` with its anchors (and another primary metric)."""
    return Spec(spec.vertical, metric or spec.metric, spec.ours, spec.baselines, anchors)


SPECS: dict[str, Spec] = {
    "banking77": with_anchors(
        INTENT,
        Anchor("BERT-Large fine-tuned (Casanueva et al. 2020)", "intent_accuracy", 0.9366),
        Anchor("USE+ConveRT (Casanueva et al. 2020)", "intent_accuracy", 0.9336),
    ),
    "clinc150": with_anchors(
        INTENT,
        Anchor("BERT in-scope accuracy (Larson et al. 2019)", "intent_accuracy", 0.969),
        Anchor("BERT + threshold in-scope accuracy", "accuracy_with_handoff", 0.962),
        Anchor("BERT + threshold OOS recall", "oos_recall", 0.523),
    ),
    "snips": with_anchors(
        INTENT, Anchor("Joint BERT (Chen et al. 2019)", "intent_accuracy", 0.986)
    ),
    "atis": with_anchors(INTENT, Anchor("Joint BERT (Chen et al. 2019)", "intent_accuracy", 0.975)),
    "stackfaq": Spec("customer_service", "recall_at_1", plain_ours, faq_baselines),
    "financial_phrasebank": with_anchors(
        FINANCE,
        Anchor("FinBERT (Araci 2019) accuracy", "accuracy", 0.86),
        Anchor("FinBERT (Araci 2019) macro-F1", "macro_f1", 0.84),
    ),
    "fiqa2018_task1": with_anchors(
        FINANCE,
        Anchor("FinBERT (Araci 2019) R^2, 10-fold CV", "r2", 0.55),
        Anchor("FinBERT (Araci 2019) MSE, 10-fold CV", "mse", 0.07),
        metric="r2",
    ),
    "sentfin": with_anchors(
        FINANCE, Anchor("RoBERTa/FinBERT entity level (Sinha et al. 2022)", "accuracy", 0.9429)
    ),
    "semeval2017_task5_headlines": with_anchors(
        FINANCE, Anchor("FEUP (Saleiro et al. 2017) cosine", "cosine", 0.68), metric="cosine"
    ),
    "pneumoniamnist": with_anchors(
        IMAGING,
        Anchor("MedMNIST v2 ResNet-18 (28) AUC", "auc", 0.944),
        Anchor("MedMNIST v2 ResNet-18 (28) ACC", "accuracy", 0.854),
    ),
    "retinamnist": with_anchors(
        IMAGING,
        Anchor("MedMNIST v2 ResNet-18 (28) AUC", "auc", 0.717),
        Anchor("MedMNIST v2 ResNet-18 (28) ACC", "accuracy", 0.524),
        Anchor("Google AutoML Vision AUC", "auc", 0.750),
        Anchor("Google AutoML Vision ACC", "accuracy", 0.531),
    ),
    "movietweetings_100k": RECOMMENDER,
    "movietweetings_100k_random": RECOMMENDER,
    "lastfm_hetrec2011_2k": RECOMMENDER,
    "amazon_scientific_unisrec": RECOMMENDER,
}
assert list(SPECS) == list(CONVERTERS), "every converted data set needs a spec, in order"


def gap(metric: str, ours: float | None, reference: float | None) -> float | None:
    """ours - reference (reference - ours for a lower-is-better metric); None if either is."""
    if ours is None or reference is None or not np.isfinite(ours):
        return None
    return float(reference - ours if metric in LOWER_IS_BETTER else ours - reference)


def finish_row(row: dict[str, Any], spec: Spec) -> None:
    """Adds the best baseline, the gap to it, and the gaps to the anchors, in place."""
    ours, metric = row["ours"], spec.metric
    scored = {k: v for k, v in row["baselines"].items() if v is not None}
    if scored:
        pick = min if metric in LOWER_IS_BETTER else max
        best = pick(scored, key=scored.get)
        row["best_baseline"] = best
        row["gap_to_best_baseline"] = gap(metric, ours, scored[best])
    primary = next((a for a in spec.anchors if a.metric == metric), None)
    row["gap_to_anchor"] = gap(metric, ours, primary.value) if primary else None
    row["anchor_gaps"] = {
        a.name: gap(a.metric, row["metrics"].get(a.metric), a.value) for a in spec.anchors
    }


def artifact_manifest(artifact: Path) -> dict:
    """The artifact's manifest, or `{}` when training left none."""
    path = artifact / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def recipe_of(manifest: dict) -> tuple[str | None, dict | None]:
    """The recipe the default picked, and how (the manifest's `recipe`), when the vertical says."""
    choice = manifest.get("recipe")
    if not isinstance(choice, dict):
        return None, None
    how = {k: choice.get(k) for k in ("method", "scores", "folds", "skipped", "reason", "metric")}
    return choice.get("recipe"), how


def new_row(name: str, spec: Spec) -> dict[str, Any]:
    """A row with every field the result format names, before anything ran."""
    return {
        "vertical": spec.vertical,
        "dataset": name,
        "protocol": "",
        "metric": spec.metric,
        "ours": None,
        "baselines": {},
        "anchor": {a.name: a.value for a in spec.anchors},
        "anchor_metrics": {a.name: a.metric for a in spec.anchors},
        "seconds": 0.0,
        "recipe": None,
        "metrics": {},
        "baseline_metrics": {},
        "timings": {},
        "counts": {},
        "error": None,
        "baseline_error": None,
    }


def run_dataset(name: str, work: Path, quick: bool) -> dict[str, Any]:
    """Converts, trains, evaluates and runs the baselines of one data set; never raises (the
    failing stage's error goes into the row, and the other stages still run)."""
    spec, started = SPECS[name], time.perf_counter()
    row = new_row(name, spec)
    row["quick"] = quick
    row["run_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    work.mkdir(parents=True, exist_ok=True)
    try:
        prepared = CONVERTERS[name](work / "data", caps_for(name, quick))
    except Exception as exc:  # noqa: BLE001 - recorded in the row
        fail(row, "error", exc, work, started)
        finish_row(row, spec)
        return row
    row.update(
        protocol=prepared.protocol,
        counts=prepared.counts,
        overrides=prepared.overrides,
    )
    row["timings"]["prepare"] = round(time.perf_counter() - started, 1)
    try:
        report, timings = train_and_evaluate(prepared, work)
        row["timings"] |= {k: round(v, 1) for k, v in timings.items()}
        row["metrics"] = spec.ours(report, prepared, work)
        row["ours"] = row["metrics"].get(spec.metric)
    except Exception as exc:  # noqa: BLE001 - recorded in the row
        fail(row, "error", exc, work, None)
    manifest = artifact_manifest(work / "run" / "artifact")
    row["recipe"], row["recipe_choice"] = recipe_of(manifest)
    row["training"] = manifest.get("training")
    if "input" in manifest:  # imaging: the channels and size taken from the images
        row["input"] = manifest["input"]
    baseline_start = time.perf_counter()
    try:
        row["baseline_metrics"] = spec.baselines(prepared, manifest)
        row["baselines"] = {k: v.get(spec.metric) for k, v in row["baseline_metrics"].items()}
    except Exception as exc:  # noqa: BLE001 - recorded in the row
        fail(row, "baseline_error", exc, work, None)
    row["timings"]["baselines"] = round(time.perf_counter() - baseline_start, 1)
    finish_row(row, spec)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def fail(
    row: dict[str, Any], key: str, exc: Exception, work: Path, started: float | None
) -> dict[str, Any]:
    """Records `exc` under `key` (its traceback in `work/<key>.txt`) and returns the row."""
    row[key] = f"{type(exc).__name__}: {exc}"
    (work / f"{key}.txt").write_text(traceback.format_exc(), encoding="utf-8")
    print(f"  {row['dataset']}: {key}: {row[key][:500]}", flush=True)
    if started is not None:
        row["seconds"] = round(time.perf_counter() - started, 1)
    return row


# ---------------------------------------------------------------------------- output


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an earlier result file at `path` (none when there is no valid one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return data.get("rows", []) if data.get("benchmark") == "generalization" else []


def write_results(path: Path, rows: list[dict[str, Any]], quick: bool, seconds: float) -> None:
    """Writes the result file (rows in the suite's order, plus the fields every bench result
    carries), atomically."""
    from shared.artifacts import library_versions

    order = {name: i for i, name in enumerate(SPECS)}
    rows = sorted(rows, key=lambda r: order.get(r["dataset"], len(order)))
    result = {
        "benchmark": "generalization",
        "dataset": "every data set of ../shared/data, one row each",
        "protocol": (
            "each vertical's default `verticals train` + `verticals evaluate` (subprocesses); "
            "only the data conversion (column/label mapping) and the protocol's split differ per "
            "data set (see each row's protocol and overrides); ours on the test split only; "
            "baselines on the same split in the same run"
        ),
        "quick": quick,
        "rows": rows,
        "metrics": {r["dataset"]: r["ours"] for r in rows},
        "baselines": {r["dataset"]: r["baselines"] for r in rows},
        "anchors": {r["dataset"]: r["anchor"] for r in rows},
        "seconds": round(seconds, 1),
        "hardware": hardware(),
        "versions": library_versions(),
        "commit": git_commit(),
        "seed": SEED,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": (
            "gaps are ours minus the reference, positive when ours is better (reversed for "
            "MSE); gap_to_anchor uses the first anchor on the row's metric; anchor_gaps has all"
        ),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def fmt(value: float | None, signed: bool = False) -> str:
    """A number for the table (`-` when missing)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    """One line per row: data set, metric, ours, best baseline and gap, anchor and gap, recipe, s."""
    head = ("dataset", "metric", "ours", "best baseline", "gap", "anchor", "gap", "recipe", "s")
    lines = [head]
    for r in rows:
        best = r.get("best_baseline")
        anchor = next(
            (v for k, v in r["anchor"].items() if r["anchor_metrics"].get(k) == r["metric"]), None
        )
        lines.append(
            (
                r["dataset"],
                r["metric"],
                fmt(r["ours"]) + (" (error)" if r.get("error") else ""),
                f"{best} {fmt(r['baselines'].get(best))}" if best else "-",
                fmt(r.get("gap_to_best_baseline"), signed=True),
                fmt(anchor),
                fmt(r.get("gap_to_anchor"), signed=True),
                str(r.get("recipe") or "-"),
                f"{r['seconds']:.0f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--only", default="", help="comma-separated data sets (see --list)")
    parser.add_argument("--quick", action="store_true", help="tiny caps: a smoke test only")
    parser.add_argument("--out", type=Path, default=None, help=f"result file ({RESULT_PATH})")
    parser.add_argument("--work", type=Path, default=WORK, help="work folder (git-ignored)")
    parser.add_argument("--list", action="store_true", help="print the data sets and exit")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="result files of runs made apart (--only X --out F): their rows replace those of "
        "--out, and nothing runs",
    )
    args = parser.parse_args(argv)
    args.work = args.work.resolve()  # the CLI runs from the project root
    args.names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SPECS)
    unknown = sorted(set(args.names) - set(SPECS))
    if unknown:
        parser.error(f"unknown data set(s) {unknown}; known: {', '.join(SPECS)}")
    if args.quick:
        args.work = args.work / "quick"
        args.out = args.out or args.work / "generalization.json"
        if args.out.resolve() == RESULT_PATH.resolve():
            parser.error(f"--quick results must not go to {RESULT_PATH}")
    args.out = (args.out or RESULT_PATH).resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list:
        print("\n".join(f"{n:30s} {CONVERTERS[n].__doc__.splitlines()[0]}" for n in SPECS))
        return
    started = time.perf_counter()
    if args.merge:
        merged = {r["dataset"]: r for path in [args.out, *args.merge] for r in load_rows(path)}
        rows = list(merged.values())
        write_results(args.out, rows, args.quick, sum(r["seconds"] for r in rows))
        print(table(sorted(rows, key=lambda r: list(SPECS).index(r["dataset"]))))
        return
    keep = [r for r in load_rows(args.out) if r["dataset"] not in args.names] if args.only else []
    rows = list(keep)
    for name in args.names:
        print(f"== {name}", flush=True)
        row = run_dataset(name, args.work / name, args.quick)
        rows.append(row)
        write_results(args.out, rows, args.quick, time.perf_counter() - started)
        print(table([row]).splitlines()[1], flush=True)
    print(table(sorted(rows, key=lambda r: list(SPECS).index(r["dataset"]))))
    print(f"written to {args.out}" + (" (quick mode: smoke figures only)" if args.quick else ""))


if __name__ == "__main__":
    main()
