"""Where one `/chat` request spends its time, stage by stage, in-process (no HTTP).

Builds the same 1,000-answer KB as `customer_service_latency`, then answers the demo phrasings
one at a time (each in a new session), timing every stage of the request path with
`perf_counter` (wall) and `thread_time` (CPU of this thread, which a busy shared CPU inflates
less). Prints medians per stage; `--json` writes them to a file.

    python -m bench.customer_service_profile --artifact /tmp/cs_demo/customer_service/run/artifact
    python -m bench.customer_service_profile --artifact ... --precision fp32 --encode-api
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.customer_service_common import demo_messages, request_bench_parser
from bench.customer_service_latency import synthetic_answers


class Spans:
    """Collects (wall, cpu) milliseconds per named stage."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)

    def time(self, name: str, fn, *args):
        wall, cpu = time.perf_counter(), time.thread_time()
        out = fn(*args)
        self.cpu[name].append((time.thread_time() - cpu) * 1000)
        self.wall[name].append((time.perf_counter() - wall) * 1000)
        return out

    def table(self) -> dict[str, dict[str, float]]:
        return {
            k: {"wall_p50_ms": float(np.median(v)), "cpu_p50_ms": float(np.median(self.cpu[k]))}
            for k, v in self.wall.items()
        }


def one_request(bot, spans: Spans, session_id: str, message: str, encode_api: bool) -> None:
    """The steps of `POST /chat` (route -> session get -> plan -> engine batch -> reply), each timed."""
    import torch

    from customer_service.service import ChatRequest
    from customer_service.session import Session
    from shared.models import embed_features, tokenize

    body = json.dumps({"session_id": session_id, "message": message})
    req = spans.time("request parse+validate (pydantic)", ChatRequest.model_validate_json, body)
    session = spans.time("session get", lambda: bot.sessions.get(session_id) or Session(session_id))
    queries = spans.time("plan (PII mask, follow-up)", bot.plan, session, req.message)
    if encode_api:
        vectors = spans.time(
            "encoder (SentenceTransformer.encode)",
            lambda: bot.encoder.encode(
                queries, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ),
        )
    else:
        features = spans.time("tokenize", tokenize, bot.encoder, queries)

        def forward():
            with torch.inference_mode():
                return embed_features(bot.encoder, features).numpy()

        vectors = spans.time("encoder forward", forward)
    answer(bot, spans, session, queries, vectors)


def answer(bot, spans: Spans, session, queries: list[str], vectors) -> None:
    """The reply stages of one message (after its embedding), each timed."""
    from customer_service.replies import build_reply
    from customer_service.retrieval import intent_logits
    from customer_service.scoring import decide
    from customer_service.service import ChatResponse

    kb, index = bot.kb.current()
    logits = spans.time("intent head", intent_logits, vectors[0], *bot.head)
    hits = spans.time(
        "KB search (FAISS + BM25 + pooling)", index.search, vectors[0], queries[0], 20
    )
    decision = spans.time(
        "decision (softmax, answer pick)",
        decide,
        hits,
        logits,
        bot.intents,
        kb.answers,
        bot.calibration,
    )
    out = spans.time(
        "reply text (template, sources)",
        build_reply,
        decision,
        kb,
        session,
        bot.calibration,
        bot.slot_values,
    )
    session.add_turn("user", queries[0])
    spans.time("session put", bot.sessions.put, session)
    spans.time(
        "response validate+JSON (pydantic)",
        lambda: ChatResponse.model_validate({**out, "context_used": False}).model_dump_json(),
    )


def main() -> None:
    from customer_service import VERTICAL
    from shared.registry import build_settings, load_runtime

    parser = request_bench_parser(__doc__, requests=300, artifact_required=True)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument(
        "--encode-api", action="store_true", help="embed with SentenceTransformer.encode"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(shutil.copytree(args.artifact, Path(tmp) / "artifact"))
        settings = build_settings(VERTICAL, device="cpu", customer_service_precision=args.precision)
        bot = load_runtime(VERTICAL, artifact, settings)
        bot.add_answers(synthetic_answers(args.kb_size - len(bot.kb_snapshot().answers)))
        messages = demo_messages()
        for i, message in enumerate(messages[:20]):  # warm-up
            one_request(bot, Spans(), f"warm-{i}", message, args.encode_api)
        spans = Spans()
        total = Spans()
        stream = itertools.islice(itertools.cycle(messages), args.requests)
        for i, message in enumerate(stream):
            total.time("total", one_request, bot, spans, f"p-{i}", message, args.encode_api)
        table = spans.table()
        table["total (sum of the stages)"] = total.table()["total"]
        kb = bot.kb_snapshot()
    import torch

    result = {
        "kb_answers": len(kb.answers),
        "kb_entries": len(kb.entry_ids),
        "precision": bot.precision,
        "encode_api": args.encode_api,
        "torch_threads": torch.get_num_threads(),
        "requests": args.requests,
        "stages": table,
    }
    width = max(map(len, table))
    print(f"{'stage':{width}s}  wall p50 ms  cpu p50 ms")
    for name, row in table.items():
        print(f"{name:{width}s}  {row['wall_p50_ms']:11.3f}  {row['cpu_p50_ms']:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
