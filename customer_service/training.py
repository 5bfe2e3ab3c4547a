"""`verticals train customer_service`: fine-tune the bi-encoder and intent head, then calibrate.

Steps: read and clean the data folder; split the pairs (by their `split` column, the rest drawn
stratified: fixed `val` or `test` pairs turn off that drawn split);
fine-tune with the shared loop; index the answers and the training paraphrases; on validation,
choose the BM25 weight, fit the temperatures, weigh the intent head against the retrieved
neighbours' intents and pick the handoff threshold; report held-out
metrics; write the artifact (encoder, head, KB version, calibration, data report) atomically;
log the data report (rows read, dropped and why, per split and intent).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from customer_service import evaluation as ev
from customer_service.bot_artifact import write_bot_artifact
from customer_service.cleaning import clean_pairs
from customer_service.config import CustomerServiceConfig
from customer_service.dialogue_acts import fit_bot_acts, merge_examples
from customer_service.kb_store import KnowledgeBase
from customer_service.ood import Calibration, choose_threshold
from customer_service.pair_splits import report_splits, resolve_pair_splits, split_oos
from customer_service.pair_splits import split_pairs as split_pairs  # re-exported
from customer_service.recipes import BotData, fit_by_recipe
from customer_service.retrieval import BotTask, KnowledgeIndex, answer_text
from customer_service.schemas import Dataset, load_dataset
from shared.data_report import DataReport
from shared.devices import seed_everything
from shared.errors import DataError
from shared.models import embed_texts

log = logging.getLogger(__name__)


def train(cfg: CustomerServiceConfig, data_path: Path, out_dir: Path) -> Path:
    """Trains on the data folder at `data_path`; returns `out_dir/"artifact"`."""
    seed_everything(cfg.trainer.seed)  # new layers are initialised before fit() runs
    data = load_dataset(data_path, cfg.columns, cfg.label_map)
    merge_examples(cfg.dialogue.act_examples, cfg.dialogue.replies, data.acts)  # fail early
    report = DataReport(str(data_path), len(data.pairs), dict(data.tables), dict(data.dropped))
    pairs = clean_pairs(data.pairs, report)
    if len(pairs) == 0:
        raise DataError(f"{data_path}: no training questions (add pairs.csv or dialogues.jsonl)")
    split = resolve_pair_splits(pairs, cfg)
    splits = {k: pairs.iloc[idx].reset_index(drop=True) for k, idx in split.indices().items()}
    oos = split_oos(data.out_of_scope, cfg.trainer.seed)
    report_splits(report, splits, split, oos, len(data.out_of_scope))
    intents = sorted({*data.kb["intent"], *pairs["intent"]} - {""})
    texts = {r.answer_id: answer_text(r.title, r.answer) for r in data.kb.itertuples()}

    bot = BotData(data, intents, texts)
    task, result, choice = fit_by_recipe(
        cfg, bot, splits["train"], splits["val"], Path(out_dir) / "run"
    )
    task.eval()

    kb = build_kb(task, data, splits["train"])
    acts = fit_bot_acts(
        lambda texts: embed_texts(task.backbone, texts, cache=task.frozen_cache),
        cfg.dialogue,
        data.acts,
        [*splits["train"]["question"], *oos["val"]["question"]],
        data.slots,
        cfg.trainer.seed,
    )
    calibration, val_metrics = calibrate(task, kb, cfg, splits["val"], oos["val"], intents)
    metrics = test_metrics(task, kb, calibration, splits["test"], oos["test"], intents)
    metrics.update(val_metrics)
    metrics.update({f"n_{k}": float(len(v)) for k, v in splits.items()})
    if acts is not None and acts.cv_accuracy is not None:
        metrics["act_cv_accuracy"] = acts.cv_accuracy  # held-out act phrases, 5-fold CV
    artifact = write_bot_artifact(
        out_dir,
        cfg,
        task,
        kb,
        calibration,
        intents,
        data,
        metrics,
        data_path,
        result,
        acts,
        data_report=report.as_dict(),
        recipe=choice.as_dict(),
    )
    report.log(log)
    return artifact


def build_kb(task: BotTask, data: Dataset, train_pairs: pd.DataFrame) -> KnowledgeBase:
    """Entries: every answer (title + body) and every training paraphrase; all embedded."""
    answers = {
        r.answer_id: {"answer": r.answer, "intent": r.intent, "title": r.title, "tags": r.tags}
        for r in data.kb.itertuples()
    }
    para = train_pairs.drop_duplicates(["question", "answer_id"])
    para = para[para["answer_id"].isin(answers)]
    ids = list(data.kb["answer_id"]) + list(para["answer_id"])
    texts = [answer_text(t, a) for t, a in zip(data.kb["title"], data.kb["answer"], strict=True)]
    texts += list(para["question"])
    kinds = ["answer"] * len(data.kb) + ["paraphrase"] * len(para)
    return KnowledgeBase(
        answers, ids, texts, kinds, embed_texts(task.backbone, texts, cache=task.frozen_cache)
    )


def calibrate(
    task: BotTask,
    kb: KnowledgeBase,
    cfg: CustomerServiceConfig,
    val: pd.DataFrame,
    oos_val: pd.DataFrame,
    intents: list[str],
) -> tuple[Calibration, dict[str, float]]:
    """BM25 weight, temperatures, in-scope weights and threshold, all from validation questions."""
    calibration, metrics = Calibration(), {}
    if len(val) == 0:
        return calibration, metrics
    index = KnowledgeIndex(kb.entry_ids, kb.entry_texts, kb.vectors)
    vectors = embed_texts(task.backbone, list(val["question"]), cache=task.frozen_cache)
    questions = list(val["question"])
    if cfg.hybrid != "off":
        weights = cfg.hybrid_weights if cfg.hybrid == "auto" else cfg.hybrid_weights[:1]
        best, metrics = ev.choose_bm25_weight(
            index, vectors, questions, list(val["answer_id"]), weights
        )
        calibration.bm25_weight = best if cfg.hybrid == "auto" else weights[0]
    hits = ev.search_all(index, vectors, questions, calibration.bm25_weight)
    logits = ev.intent_logits(task, vectors)
    intent_ids = [intents.index(i) if i in intents else -1 for i in val["intent"]]
    ev.fit_calibration(hits, logits, list(val["answer_id"]), intent_ids, calibration)
    metrics.update(ev.fit_intent_fusion(hits, logits, intent_ids, intents, kb.answers, calibration))
    in_scope = ev.decisions_for(hits, logits, intents, kb.answers, calibration)
    oos = _decide_texts(task, index, kb, list(oos_val["question"]), intents, calibration)
    ev.fit_in_scope(in_scope, oos, calibration)
    in_scores, oos_scores = ev.threshold_scores(in_scope, oos, cfg.trainer.seed)
    calibration.threshold, calibration.threshold_source = choose_threshold(
        in_scores,
        oos_scores,
        cfg.target_oos_recall,
        cfg.fallback_handoff_rate,
        cfg.oos_recall_confidence,
    )
    if len(oos):
        calibration.threshold_source += "; on out-of-fold in-scope scores (5 folds)"
    metrics["val_threshold"] = calibration.threshold
    return calibration, metrics


def _decide_texts(task, index, kb, texts, intents, calibration):
    if not texts:
        return []
    vectors = embed_texts(task.backbone, texts, cache=task.frozen_cache)
    hits = ev.search_all(index, vectors, texts, calibration.bm25_weight)
    return ev.decisions_for(hits, ev.intent_logits(task, vectors), intents, kb.answers, calibration)


def test_metrics(
    task: BotTask,
    kb: KnowledgeBase,
    calibration: Calibration,
    test: pd.DataFrame,
    oos_test: pd.DataFrame,
    intents: list[str],
) -> dict[str, float]:
    """Held-out metrics on the test questions (never seen in training or calibration)."""
    index = KnowledgeIndex(kb.entry_ids, kb.entry_texts, kb.vectors)
    questions = list(test["question"])
    vectors = embed_texts(task.backbone, questions, cache=task.frozen_cache)
    hits = ev.search_all(index, vectors, questions, calibration.bm25_weight)
    logits = ev.intent_logits(task, vectors)
    decisions = ev.decisions_for(hits, logits, intents, kb.answers, calibration)
    oos = _decide_texts(task, index, kb, list(oos_test["question"]), intents, calibration)
    out = ev.heldout_metrics(decisions, test, oos, calibration.threshold, intents)
    if calibration.head_weight < 1.0 and "intent_accuracy" in out:  # what the fusion adds
        head_only = replace(calibration, head_weight=1.0)
        alone = ev.decisions_for(hits, logits, intents, kb.answers, head_only)
        out["intent_accuracy_head_only"] = float(
            np.mean([(d.intent or "") == i for d, i in zip(alone, test["intent"], strict=True)])
        )
    return {f"test_{k}": v for k, v in out.items()}
