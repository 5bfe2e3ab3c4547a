"""Scoring throughput on CPU: our service path vs a plain transformers pipeline, same model, same run.

Ours: `POST /v1/finance_sentiment/score` through the FastAPI app (TestClient, in process) and the
shared inference engine, 32 texts per request; sequential requests, and 4 concurrent clients.
Baseline: `transformers.pipeline("feature-extraction")` on the same fine-tuned body (batch 32),
mean pooling and the same linear head applied to its output (our model is body + mean pooling +
head, which `pipeline("text-classification")` cannot express). Texts: the PhraseBank 50Agree test
split (evaluation data, not stored). Medians over `--repeats` interleaved runs.

Run: python bench/finance_throughput.py --artifact /tmp/finance_bench/phrasebank_50agree/artifact
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, bench_parser, write_result  # noqa: E402
from bench.finance_phrasebank import protocol_split, read_phrasebank  # noqa: E402


def service_rate(client, texts: list[str], batch: int, clients: int) -> float:
    chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]

    def send(chunk):
        r = client.post("/v1/finance_sentiment/score", json={"texts": chunk})
        r.raise_for_status()
        return r.json()["results"]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [x for part in pool.map(send, chunks) for x in part]
    assert len(results) == len(texts)
    return len(texts) / (time.perf_counter() - started)


def pipeline_scorer(artifact: Path):
    from transformers import AutoModel, AutoTokenizer, pipeline

    from shared.artifacts import load_weights

    tokenizer = AutoTokenizer.from_pretrained(str(artifact / "model"))
    model = AutoModel.from_pretrained(str(artifact / "model"))
    pipe = pipeline(
        "feature-extraction",
        model=model,
        tokenizer=tokenizer,
        device="cpu",
        return_tensors=True,
        tokenize_kwargs={"truncation": True, "max_length": 64},
    )
    heads = load_weights(artifact / "heads.safetensors")
    weight, bias = heads["head.weight"], heads["head.bias"]

    def score(texts: list[str]) -> np.ndarray:
        outputs = pipe(texts, batch_size=32)
        pooled = torch.stack([o[0].mean(0) for o in outputs])
        return (pooled @ weight.T + bias).softmax(-1).numpy()

    return score


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--artifact", type=Path, default=Path("/tmp/finance_bench/phrasebank_50agree/artifact")
    )
    parser.add_argument(
        "--data", type=Path, default=DATA / "finance_sentiment" / "financial_phrasebank"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-texts", type=int, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from fastapi.testclient import TestClient

    import finance_sentiment as fs
    from finance_sentiment.settings import FinanceSettings
    from shared.serving import create_app

    started = time.perf_counter()
    texts, _ = read_phrasebank(args.data / "Sentences_50Agree.txt")
    _, _, te = protocol_split(len(texts))
    sample = [texts[i] for i in te][: args.max_texts]
    ours, ours_conc, theirs = [], [], []
    pipe = pipeline_scorer(args.artifact)
    pipe(sample[:32])  # warm-up
    settings = FinanceSettings(
        device="cpu", max_batch_size=32, finance_db=Path(tempfile.mkdtemp()) / "monitor.db"
    )
    with TestClient(create_app(fs.VERTICAL, args.artifact, settings)) as client:
        service_rate(client, sample[:64], 32, 1)  # warm-up
        for _ in range(args.repeats):
            ours.append(service_rate(client, sample, 32, 1))
            ours_conc.append(service_rate(client, sample, 32, 4))
            t = time.perf_counter()
            probs = pipe(sample)
            theirs.append(len(sample) / (time.perf_counter() - t))
        ref = client.post("/v1/finance_sentiment/score", json={"texts": sample[:64]}).json()[
            "results"
        ]
    agree = float(
        np.mean(
            [
                r["label"] == ["negative", "neutral", "positive"][int(p.argmax())]
                for r, p in zip(ref, probs[:64], strict=True)
            ]
        )
    )
    metrics = {
        "texts_per_s": statistics.median(ours),
        "texts_per_s_4_clients": statistics.median(ours_conc),
        "pipeline_texts_per_s": statistics.median(theirs),
    }
    metrics["ratio_vs_pipeline"] = metrics["texts_per_s"] / metrics["pipeline_texts_per_s"]
    metrics["label_agreement_with_pipeline"] = agree
    write_result(
        "finance_throughput",
        dataset=f"Financial PhraseBank 50Agree test split ({len(sample)} sentences)",
        protocol=f"CPU, torch threads {torch.get_num_threads()}; median of {args.repeats} interleaved repeats; "
        "32 texts per request / pipeline batch 32; max_length 64",
        metrics=metrics,
        baselines={"transformers_pipeline": {"texts_per_s": metrics["pipeline_texts_per_s"]}},
        seconds=time.perf_counter() - started,
        seed=None,
        notes=f"artifact {args.artifact}; shared CPU, timings noisy: compare the ratio. Raw: ours {ours}, "
        f"4 clients {ours_conc}, pipeline {theirs}",
    )


if __name__ == "__main__":
    main()
