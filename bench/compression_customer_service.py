"""int8 compression of a trained customer_service bot: size, CPU latency and accuracy change.

Takes an artifact trained by the vertical's default `verticals train` (for example the one the
generalization suite leaves under `runs/gen_work/<data set>/run/artifact`) and the data folder it
was trained on. `verticals compress --method int8` (the encoder in int8, the KB re-embedded by
it) measures both bots side by side on the artifact's validation split (`measure_runtimes`:
rounds that visit each bot in turn; p50 of one message through `Runtime.predict`, which is the
whole chat turn: encoder, retrieval, intent head, calibration). With `--test`, both are also
scored by `verticals evaluate` on that data (the test split the artifact never saw).

    OMP_NUM_THREADS=1 python -m bench.compression_customer_service \\
        --artifact runs/gen_work/snips/run/artifact --data runs/gen_work/snips/data/train \\
        --test runs/gen_work/snips/data/test --name snips
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from bench.common import ROOT, Timer, bench_parser, write_result
from customer_service import VERTICAL
from shared.compression import compress_artifact, format_table
from shared.registry import build_settings, load_runtime

TEST_KEYS = ("accuracy", "decision_accuracy", "recall_at_1", "handoff_rate")


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the data it was trained on")
    parser.add_argument("--test", type=Path, default=None, help="held-out data for `evaluate`")
    parser.add_argument("--name", default="", help="the data set's name, for the record")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compression_cs" / "int8")
    return parser.parse_args()


def test_scores(folders: dict[str, Path], test: Path) -> dict[str, dict[str, float]]:
    """`evaluate`'s headline metrics of each artifact on `test`."""
    settings = build_settings(VERTICAL, device="cpu")
    scores = {}
    for name, folder in folders.items():
        report = VERTICAL.evaluate(load_runtime(VERTICAL, folder, settings), test)
        scores[name] = {f"test_{k}": float(report.metrics[k]) for k in TEST_KEYS}
    return scores


def main() -> None:
    args = parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with Timer() as total:
        section = compress_artifact(
            VERTICAL, args.artifact, args.out, "int8", args.data, rounds=args.rounds
        )
        measured = section["measured"]
        rows = {name: dict(row) for name, row in measured["rows"].items()}
        if args.test is not None:
            folders = {"original": args.artifact, "int8": args.out}
            for name, scores in test_scores(folders, args.test).items():
                rows[name].update(scores)
            for key in [k for k in rows["int8"] if k.startswith("test_")]:
                rows["int8"][f"{key}_delta"] = rows["int8"][key] - rows["original"][key]
    print(format_table(measured["rows"], measured["metric"]))
    write_result(
        "compression_customer_service",
        dataset=f"customer_service/{args.name or args.data}",
        protocol=(
            f"artifact {args.artifact} (default `verticals train`), compressed by "
            f"`verticals compress --method int8`; size_mb, p50_ms (one chat turn through "
            f"Runtime.predict), throughput, speedup and metric_delta measured side by side on "
            f"{measured['split']} ({measured['metric']}: right answer and no handoff), "
            f"{args.rounds} interleaved rounds, torch threads {torch.get_num_threads()}; "
            + (f"test_* from `verticals evaluate` on {args.test}" if args.test else "no test data")
        ),
        metrics={"int8": rows["int8"]},
        baselines={"fp32": rows["original"]},
        seconds=total.seconds,
        seed=0,
        notes="the KB agreement of the int8 encoder with fp32: "
        f"{section['params']['kb_embedding_agreement']}; the handoff threshold is the original's",
    )


if __name__ == "__main__":
    main()
