"""int8 compression of a trained recommender: size, latency and the ranking metric's change.

Protocol: MovieTweetings 100K as `bench.generalization` runs it (5-core, leave-last-out by time:
each user's last new item test, the one before it validation; `bench.generalization_data_rec.
movietweetings_100k`). `verticals train recommender` with the defaults (all-MiniLM-L6-v2 item
tower, seed 0) unless `--artifact` names one trained so, then `verticals compress --method int8`
(the item tower in int8, the catalogue re-embedded by it). The command measures both
side by side on the validation split (`measure_runtimes`: p50 of one request through
`Runtime.predict`, throughput, Recall@10 of the validation users); then both are scored by
`verticals evaluate` on the test split (NDCG@10 and Recall@10 of the served, ranked order, as
the generalization row).

A recommendation does not run the item tower (the user vector pools indexed embeddings), so
no speed-up is expected there; what int8 buys is the artifact's size and the speed of embedding
new items (`items_embedded_per_s` in the params).

    OMP_NUM_THREADS=1 python -m bench.compression_recommender      # about 15 minutes
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from bench.common import ROOT, Timer, bench_parser, write_result
from bench.generalization import run_cli
from bench.generalization_data import FULL_CAPS, Caps
from bench.generalization_data_rec import movietweetings_100k
from recommender import VERTICAL
from shared.compression import compress_artifact, format_table
from shared.registry import build_settings, load_runtime

TEST_KEYS = ("ranked_ndcg_at_10", "ranked_recall_at_10")


def parse_args():
    parser = bench_parser(__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "compression_rec")
    parser.add_argument("--artifact", type=Path, default=None, help="skip training: this one")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def test_scores(folders: dict[str, Path], test: Path) -> dict[str, dict[str, float]]:
    """`evaluate`'s headline metrics of each artifact on `test`."""
    settings = build_settings(VERTICAL, device="cpu")
    scores = {}
    for name, folder in folders.items():
        runtime = load_runtime(VERTICAL, folder, settings)
        report = VERTICAL.evaluate(runtime, test)
        runtime.close()
        scores[name] = {f"test_{k}": float(report.metrics[k]) for k in TEST_KEYS}
    return scores


def main() -> None:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    prepared = movietweetings_100k(args.work / "data", FULL_CAPS.get("movietweetings_100k", Caps()))
    with Timer() as total:
        artifact = args.artifact
        if artifact is None:
            run_dir = args.work / "run"
            run_cli(
                ["train", "recommender", "--data", str(prepared.train), "--out", str(run_dir),
                 "--overwrite", *prepared.overrides],
                args.work / "train.log",
            )  # fmt: skip
            artifact = run_dir / "artifact"
        out = args.work / "int8"
        shutil.rmtree(out, ignore_errors=True)
        section = compress_artifact(
            VERTICAL, artifact, out, "int8", prepared.train, rounds=args.rounds
        )
        measured = section["measured"]
        rows = {name: dict(row) for name, row in measured["rows"].items()}
        for name, scores in test_scores({"original": artifact, "int8": out}, prepared.test).items():
            rows[name].update(scores)
        for key in [k for k in rows["int8"] if k.startswith("test_")]:
            rows["int8"][f"{key}_delta"] = rows["int8"][key] - rows["original"][key]
    print(format_table(measured["rows"], measured["metric"]))
    params = section["params"]
    write_result(
        "compression_recommender",
        dataset="recommender/movietweetings_100k",
        protocol=(
            f"{prepared.protocol}; artifact {artifact} (default `verticals train`), compressed "
            "by `verticals compress --method int8`; size_mb, p50_ms (one recommendation "
            "through Runtime.predict), throughput, speedup and metric_delta measured side by "
            f"side on {measured['split']} ({measured['metric']}), {args.rounds} interleaved "
            f"rounds, torch threads {torch.get_num_threads()}; test_* from `verticals "
            "evaluate` on the test split"
        ),
        metrics={"int8": rows["int8"]},
        baselines={"fp32": rows["original"]},
        seconds=total.seconds,
        seed=0,
        notes=(
            f"catalogue embedding agreement of the int8 tower with fp32: "
            f"{params['catalogue_embedding_agreement']} over {params['catalogue_items']} items; "
            f"items embedded per second: {params['items_embedded_per_s']}"
        ),
    )


if __name__ == "__main__":
    main()
