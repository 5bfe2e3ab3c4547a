"""PhraseBank 50Agree by several routes, side by side: test score, training time, serving latency.

Every route is `verticals train finance_sentiment` then `verticals evaluate` on the split of the
`financial_phrasebank` row of `bench.generalization` (FinBERT protocol: shuffle split
random_state=0, 80/10/10; seed 0). Only the model and recipe differ:

- `minilm_default`: the default recipe (`auto`) from all-MiniLM-L6-v2, as the generalization row;
- `mpnet_frozen`: `model=mpnet recipe=frozen`: all-mpnet-base-v2 (110M) frozen, logistic head;
- `mpnet_finetune_1epoch`: `model=mpnet recipe=finetune trainer.epochs=1`, a tuned variant
  (one epoch instead of the default three, to fit a 2-core CPU; the best epoch is still chosen
  on validation). Where the machine allows, the default recipe with `model=mpnet` is the route.
- TAPT (pretraining on the training texts first) is `bench.tapt`; its figures go beside these,
  and its MiniLM default run on this split stands for `minilm_default` where it finished.

Each call trains the routes of `--routes` whose artifact is not in `--work` yet, then measures
every artifact found there side by side on one thread (`measure_runtimes` on the validation
rows: size, p50 of one text through `Runtime.predict`, throughput in batches of 64) and writes
`bench/results/phrasebank_routes.json`.

    OMP_NUM_THREADS=1 python -m bench.phrasebank_routes --routes mpnet_frozen
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bench.common import RESULTS, bench_parser, write_result
from bench.generalization import artifact_manifest, recipe_of, train_and_evaluate
from bench.generalization_data import Caps, financial_phrasebank
from finance_sentiment import VERTICAL
from finance_sentiment.compress import validation
from shared.compression import format_table, measure_runtimes
from shared.registry import build_settings, load_runtime

ROUTES: dict[str, list[str]] = {
    "minilm_default": [],
    "mpnet_frozen": ["model=mpnet", "recipe=frozen"],
    "mpnet_finetune_1epoch": ["model=mpnet", "recipe=finetune", "trainer.epochs=1"],
}
"""Each route's overrides on top of the data set's column mapping."""
SCORES = ("accuracy", "macro_f1")
ANCHOR = {"finbert_accuracy": 0.86, "finbert_macro_f1": 0.84}


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated routes")
    parser.add_argument("--work", type=Path, default=Path("runs/phrasebank_routes"))
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds")
    parser.add_argument(
        "--tapt-work",
        type=Path,
        default=Path("runs/tapt/financial_phrasebank"),
        help="bench.tapt's folder, whose MiniLM default run stands for minilm_default",
    )
    return parser.parse_args()


def artifact_of(work: Path, route: str) -> Path:
    return work / route / "run" / "artifact"


def tapt_base(tapt_work: Path) -> tuple[dict, float] | None:
    """The report and training seconds of `bench.tapt`'s MiniLM default run on this split (the
    same data and recipe as `minilm_default`), when that run finished."""
    report = tapt_work / "base" / "report" / "metrics.json"
    result = RESULTS / "tapt.json"
    if not (report.is_file() and result.is_file()):
        return None
    rows = json.loads(json.loads(result.read_text(encoding="utf-8"))["notes"])["rows"]
    row = next((r for r in rows if r["dataset"] == "financial_phrasebank"), None)
    if row is None:
        return None
    return json.loads(report.read_text(encoding="utf-8"))["metrics"], row["seconds"]["train_base"]


def train_route(route: str, work: Path, tapt_work: Path) -> None:
    """Trains and evaluates one route; its test metrics and seconds in `work/route/route.json`.
    `minilm_default` takes `bench.tapt`'s base run instead where there is one."""
    reused = tapt_base(tapt_work) if route == "minilm_default" else None
    if reused:
        (work / route / "run").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(artifact_of(work, route), ignore_errors=True)
        shutil.copytree(tapt_work / "base" / "run" / "artifact", artifact_of(work, route))
        report, train_seconds = reused
    else:
        prepared = financial_phrasebank(work / "data", Caps())
        prepared.overrides = [*prepared.overrides, *ROUTES[route]]
        report, seconds = train_and_evaluate(prepared, work / route)
        train_seconds = seconds["train"]
    recipe, how = recipe_of(artifact_manifest(artifact_of(work, route)))
    record = {
        "overrides": ROUTES[route],
        "recipe": recipe,
        "recipe_choice": how,
        **{f"test_{m}": report.get(m) for m in SCORES},
        "train_seconds": round(train_seconds, 1),
        **({"from": str(tapt_work / "base")} if reused else {}),
    }
    (work / route / "route.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(route, json.dumps(record), flush=True)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    for route in args.routes.split(","):
        if route not in ROUTES:
            raise SystemExit(f"unknown route {route!r}; choose from {', '.join(ROUTES)}")
        if not (args.work / route / "route.json").is_file():
            train_route(route, args.work, args.tapt_work)
    done = [r for r in ROUTES if (args.work / r / "route.json").is_file()]
    records = {r: json.loads((args.work / r / "route.json").read_text()) for r in done}
    folders = {r: artifact_of(args.work, r) for r in done}
    settings = build_settings(VERTICAL, device="cpu")
    runtimes = {r: load_runtime(VERTICAL, f, settings) for r, f in folders.items()}
    val = validation(folders[done[0]], financial_phrasebank(args.work / "data", Caps()).train)
    rows = measure_runtimes(runtimes, folders, val, rounds=args.rounds)
    print(format_table(rows, val.metric))
    metrics = {
        f"{r}.{k}": v
        for r in done
        for k, v in {
            **{f"test_{m}": records[r][f"test_{m}"] for m in SCORES},
            "train_seconds": records[r]["train_seconds"],
            "size_mb": rows[r]["size_mb"],
            "p50_ms": rows[r]["p50_ms"],
            "throughput": rows[r]["throughput"],
            "val_macro_f1": rows[r]["metric"],
        }.items()
    }
    write_result(
        "phrasebank_routes",
        dataset="Financial PhraseBank Sentences_50Agree",
        protocol=(
            "FinBERT split (shuffle, random_state=0, 80/10/10), seed 0; per route `verticals "
            "train finance_sentiment` + `verticals evaluate` on the test split; latency side by "
            "side on the validation rows (p50 of one text through Runtime.predict, one thread)"
        ),
        metrics=metrics,
        anchors=ANCHOR,
        seconds=time.perf_counter() - started,
        seed=0,
        notes=json.dumps({r: records[r] for r in done}),
    )


if __name__ == "__main__":
    main()
