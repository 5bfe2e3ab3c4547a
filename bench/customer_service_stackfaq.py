"""StackFAQ query -> answer retrieval: our fine-tuned bi-encoder vs BM25 and the untuned encoder.

Protocol (split by query): in each of the 125 threads, the user paraphrases (placeholders `*` and
empty ones skipped) are shuffled with the seed; half go to test, the rest (plus the thread's
original question) to training, of which 10% is validation. The index holds the 719 answers
only; a query is answered correctly at rank r when the r-th answer belongs to its thread.
Baselines in the same run: BM25 (bm25s) over the answers, and the untuned default encoder.

    python -m bench.customer_service_stackfaq                 # 1 epoch (bounded for a shared CPU)
    python -m bench.customer_service_stackfaq --epochs 3
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import DATA, bench_parser, write_result
from customer_service.config import CustomerServiceConfig
from customer_service.retrieval import KnowledgeIndex
from customer_service.training import train
from shared.config import load_config
from shared.evaluation import retrieval_metrics
from shared.models import embed_texts, load_model

KEYS = ("recall_at_1", "recall_at_5", "mrr")


def load_stackfaq(path: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(answers: answer_id, answer, thread), (queries: question, answer_id, thread, split)."""
    threads = json.loads(path.read_text(encoding="utf-8"))["root"]["qapair"]
    rng = random.Random(seed)
    answers, queries = [], []
    for t, thread in enumerate(threads):
        texts = thread["answer"] if isinstance(thread["answer"], list) else [thread["answer"]]
        ids = [f"t{t}_a{j}" for j in range(len(texts))]
        answers += [
            {"answer_id": i, "answer": " ".join(str(a).split()), "thread": t}
            for i, a in zip(ids, texts, strict=True)
        ]
        rephr = [r for r in thread.get("rephr") or [] if r and r.strip() and r.strip() != "*"]
        rng.shuffle(rephr)
        half = len(rephr) // 2
        split = ["test"] * half + ["train"] * (len(rephr) - half)
        queries += [
            {"question": q, "answer_id": ids[0], "thread": t, "split": s}
            for q, s in zip(rephr, split, strict=True)
        ]
        queries.append(
            {"question": thread["question"], "answer_id": ids[0], "thread": t, "split": "train"}
        )
    q = pd.DataFrame(queries)
    train_idx = q.index[q["split"] == "train"].to_numpy()
    val = np.random.default_rng(seed).choice(train_idx, size=len(train_idx) // 10, replace=False)
    q.loc[val, "split"] = "val"
    return pd.DataFrame(answers), q


def thread_ranks(
    ranked_ids: list[list[str]], answer_thread: dict[str, int], targets: list[int]
) -> np.ndarray:
    ranks = np.full(len(targets), np.inf)
    for i, (row, t) in enumerate(zip(ranked_ids, targets, strict=True)):
        pos = next((j for j, a in enumerate(row) if answer_thread[a] == t), None)
        ranks[i] = np.inf if pos is None else pos + 1
    return ranks


def dense_ranking(
    encoder, answers: pd.DataFrame, queries: list[str], k: int = 50
) -> list[list[str]]:
    index = KnowledgeIndex(
        list(answers["answer_id"]),
        list(answers["answer"]),
        embed_texts(encoder, list(answers["answer"])),
    )
    return [[h.answer_id for h in index.search(v, k=k)] for v in embed_texts(encoder, queries)]


def bm25_ranking(answers: pd.DataFrame, queries: list[str], k: int = 50) -> list[list[str]]:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(list(answers["answer"]), stopwords="en", show_progress=False),
        show_progress=False,
    )
    docs, _ = retriever.retrieve(
        bm25s.tokenize(queries, stopwords="en", show_progress=False), k=k, show_progress=False
    )
    ids = list(answers["answer_id"])
    return [[ids[int(i)] for i in row] for row in docs]


def metrics_of(ranked, answer_thread, targets) -> dict[str, float]:
    m = retrieval_metrics(thread_ranks(ranked, answer_thread, targets), ks=(1, 5, 10))
    return {k: m[k] for k in (*KEYS, "recall_at_10")}


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=DATA / "customer_service" / "stackfaq" / "stackExchange-FAQ.json",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seq-length", type=int, default=96)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    answers, queries = load_stackfaq(args.data, args.seed)
    test = queries[queries["split"] == "test"]
    answer_thread = dict(zip(answers["answer_id"], answers["thread"], strict=True))
    targets = list(test["thread"])
    cfg = load_config(
        CustomerServiceConfig,
        overrides={
            "max_seq_length": args.max_seq_length,
            "hybrid": "off",
            "trainer": {
                "epochs": args.epochs,
                "batch_size": 32,
                "seed": args.seed,
                "progress": False,
            },
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        answers[["answer_id", "answer"]].to_csv(folder / "kb.csv", index=False)
        queries[["question", "answer_id", "split"]].to_csv(folder / "pairs.csv", index=False)
        artifact = train(cfg, folder, Path(tmp) / "run")
        tuned = load_model(str(artifact / "encoder"), "sentence-encoder")
        ours = metrics_of(
            dense_ranking(tuned, answers, list(test["question"])), answer_thread, targets
        )
    untuned = load_model("minilm", "sentence-encoder")
    untuned.max_seq_length = args.max_seq_length
    baselines = {
        "bm25": metrics_of(bm25_ranking(answers, list(test["question"])), answer_thread, targets),
        "untuned_encoder": metrics_of(
            dense_ranking(untuned, answers, list(test["question"])), answer_thread, targets
        ),
    }
    write_result(
        "stackfaq",
        dataset="StackFAQ (125 threads, 719 answers)",
        protocol=(
            f"split by query: per thread half of the paraphrases to test ({len(test)} queries), rest + original "
            f"question to train/val (10% val); index = answers only; hit = answer of the query's thread; "
            f"fine-tune {args.epochs} epoch(s), MNRL to the thread's first answer, max_seq_length {args.max_seq_length}"
        ),
        metrics=ours,
        baselines=baselines,
        anchors={},
        seconds=time.perf_counter() - started,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
