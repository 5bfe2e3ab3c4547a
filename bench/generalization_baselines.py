"""The same-run baselines of `bench.generalization`, one function per vertical.

Each takes the prepared data set and our artifact's manifest (for the resolved settings, such
as the imaging input) and returns `{baseline name: metrics}` on the same test split as ours:
frozen MiniLM + logistic regression for text, BM25 for FAQ retrieval, a linear probe on the
frozen image backbone, and MostPop / ItemKNN / ALS / BPR for recommending.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.generalization_data import SEED, SPLITS, Prepared

Metrics = dict[str, float]
C_GRID = (0.1, 1.0, 10.0, 100.0)


def numbers(metrics: dict[str, Any]) -> Metrics:
    """The numeric entries of a metrics dict, as floats."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def score_metrics(pred: np.ndarray, gold: np.ndarray) -> Metrics:
    """MSE, R^2 and cosine similarity of predicted against gold scores, and the share of nonzero
    gold scores whose sign is predicted."""
    residual = float(np.sum((gold - pred) ** 2))
    total = float(np.sum((gold - gold.mean()) ** 2)) or 1.0
    norm = float(np.linalg.norm(pred) * np.linalg.norm(gold)) or 1.0
    signed = gold != 0
    return {
        "mse": float(np.mean((gold - pred) ** 2)),
        "r2": 1.0 - residual / total,
        "cosine": float(pred @ gold) / norm,
        "sign_accuracy": float(np.mean(np.sign(pred[signed]) == np.sign(gold[signed]))),
    }


def frozen_features(texts: list[str], max_seq_length: int) -> dict[str, np.ndarray]:
    """Text -> frozen default MiniLM embedding (`shared.models.embed_texts`)."""
    from bench.customer_service_common import frozen_embeddings

    return frozen_embeddings(texts, "minilm", max_seq_length)


def fit_logreg(
    x: dict[str, np.ndarray], y: dict[str, np.ndarray], select: str
) -> tuple[Any, float]:
    """Logistic regression with C from `C_GRID` best on validation by `select` (accuracy or
    macro_f1), fitted on train; the model and the C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    def score(model) -> float:
        pred = model.predict(x["val"])
        if select == "macro_f1":
            return f1_score(y["val"], pred, average="macro")
        return accuracy_score(y["val"], pred)

    fits = {c: LogisticRegression(C=c, max_iter=3000).fit(x["train"], y["train"]) for c in C_GRID}
    best = max(C_GRID, key=lambda c: score(fits[c])) if len(y["val"]) else 10.0
    return fits[best], best


def text_logreg(
    prepared: Prepared, label: str, max_seq_length: int, select: str = "accuracy"
) -> tuple[Metrics, Any, np.ndarray]:
    """Frozen MiniLM + logistic regression on `prepared.tables` (`text`, `label` per split):
    test accuracy and macro-F1, the model, and its test probabilities."""
    from sklearn.metrics import accuracy_score, f1_score

    tables = prepared.tables
    cache = frozen_features([t for n in SPLITS for t in tables[n]["text"]], max_seq_length)
    x = {n: np.stack([cache[t] for t in tables[n]["text"]]) for n in SPLITS}
    y = {n: tables[n][label].astype(str).to_numpy() for n in SPLITS}
    model, c = fit_logreg(x, y, select)
    probs = model.predict_proba(x["test"])
    pred = model.classes_[probs.argmax(1)]
    metrics = {
        "accuracy": float(accuracy_score(y["test"], pred)),
        "macro_f1": float(f1_score(y["test"], pred, average="macro")),
        "C": c,
    }
    return metrics, model, probs


def intent_baselines(prepared: Prepared, manifest: dict) -> dict[str, Metrics]:
    """Frozen MiniLM + LR on the intents (test intents unseen in training count as errors)."""
    from customer_service.config import CustomerServiceConfig

    metrics, _, _ = text_logreg(prepared, "intent", CustomerServiceConfig().max_seq_length)
    return {"frozen_minilm_logreg": metrics | {"intent_accuracy": metrics["accuracy"]}}


def finance_baselines(prepared: Prepared, manifest: dict) -> dict[str, Metrics]:
    """Frozen MiniLM + LR on the sentiments (C by validation macro-F1), with its score metrics
    (P(positive) - P(negative)) for scored data sets."""
    from finance_sentiment.config import FinanceConfig

    metrics, model, probs = text_logreg(
        prepared, "sentiment", FinanceConfig().text.max_length, select="macro_f1"
    )
    test = prepared.tables["test"]
    if "score" in test.columns:
        classes = list(model.classes_)

        def column(name: str) -> np.ndarray:
            return probs[:, classes.index(name)] if name in classes else np.zeros(len(probs))

        scores = column("positive") - column("negative")
        metrics |= score_metrics(scores, test["score"].to_numpy(dtype=np.float64))
        return {"frozen_minilm_logreg": metrics, "frozen_minilm_ridge": text_ridge(prepared)}
    return {"frozen_minilm_logreg": metrics}


def text_ridge(prepared: Prepared) -> Metrics:
    """Frozen MiniLM + ridge regression of the gold score (alpha best on validation MSE,
    fitted on train, clipped to [-1, 1]): the score metrics on test. A regression baseline for
    scored data sets, where P(positive) - P(negative) of a classifier is not one."""
    from sklearn.linear_model import Ridge

    from finance_sentiment.config import FinanceConfig

    tables = prepared.tables
    texts = [t for n in SPLITS for t in tables[n]["text"]]
    cache = frozen_features(texts, FinanceConfig().text.max_length)
    x = {n: np.stack([cache[t] for t in tables[n]["text"]]) for n in SPLITS}
    y = {n: tables[n]["score"].to_numpy(dtype=np.float64) for n in SPLITS}
    fits = {a: Ridge(alpha=a).fit(x["train"], y["train"]) for a in (0.1, 1.0, 10.0, 100.0)}

    def val_mse(alpha: float) -> float:
        return float(np.mean((np.clip(fits[alpha].predict(x["val"]), -1, 1) - y["val"]) ** 2))

    best = min(fits, key=val_mse)
    pred = np.clip(fits[best].predict(x["test"]), -1, 1)
    return score_metrics(pred, y["test"]) | {"alpha": best}


def faq_baselines(prepared: Prepared, manifest: dict) -> dict[str, Metrics]:
    """BM25 over the answers, BM25 over the answers and the training questions (what our index
    holds), and frozen MiniLM + LR on the thread; R@1, R@5 and MRR by thread."""
    import pandas as pd

    from bench.customer_service_stackfaq import bm25_ranking, thread_ranks
    from shared.evaluation import retrieval_metrics

    tables, answers = prepared.tables, prepared.tables["answers"]
    test = tables["test"]
    targets = list(test["thread"])
    seen = tables["train"].reset_index(drop=True)
    questions = pd.DataFrame(
        {
            "answer_id": [f"q{i}" for i in range(len(seen))],
            "answer": seen["text"],
            "thread": seen["thread"],
        }
    )
    from customer_service.config import CustomerServiceConfig

    out = {}
    for name, entries in (
        ("bm25", answers),
        ("bm25_answers_and_train_questions", pd.concat([answers, questions])),
    ):
        ranked = bm25_ranking(entries, list(test["text"]))
        thread_of = dict(zip(entries["answer_id"], entries["thread"], strict=True))
        figures = retrieval_metrics(thread_ranks(ranked, thread_of, targets), ks=(1, 5))
        out[name] = {k: v for k, v in figures.items() if not k.startswith("ndcg")}
    metrics, model, probs = text_logreg(prepared, "intent", CustomerServiceConfig().max_seq_length)
    order = np.argsort(-probs, axis=1)
    gold = np.array(
        [list(model.classes_).index(t) if t in model.classes_ else -1 for t in test["intent"]]
    )
    ranks = np.array(
        [
            np.flatnonzero(row == g)[0] + 1 if g >= 0 else np.inf
            for row, g in zip(order, gold, strict=True)
        ]
    )
    out["frozen_minilm_logreg"] = {
        k: v for k, v in retrieval_metrics(ranks, ks=(1, 5)).items() if not k.startswith("ndcg")
    } | {"C": metrics["C"]}
    return out


def imaging_baselines(prepared: Prepared, manifest: dict) -> dict[str, Metrics]:
    """Linear probe: logistic regression (C by validation AUC) on the frozen default backbone's
    pooled features, at the artifact's input size and channels (resolved from the images as
    `train` resolves them when there is no artifact), on the npz's own splits."""
    from medical_imaging.config import MedicalImagingConfig
    from medical_imaging.datasets import read_source
    from medical_imaging.recipes import resolve_input
    from shared.config import load_config

    names = list(prepared.tables["label_map"].values())
    source = read_source(prepared.tables["npz"], label_map=prepared.tables["label_map"])
    if manifest.get("config"):
        cfg = MedicalImagingConfig(**manifest["config"])
    else:
        cfg, _ = resolve_input(
            load_config(MedicalImagingConfig, overrides=prepared.overrides), source
        )
    x, y = image_features(source, names, cfg)
    probe = probe_metrics(x, y, len(names))
    return {"linear_probe": probe | {"image_size": cfg.image_size, "in_chans": cfg.in_chans}}


def image_features(
    source: Any, names: list[str], cfg: Any
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Pooled features of the frozen pretrained backbone and class ids, per split of `source`
    (an `ImageSource` with its splits fixed)."""
    import torch

    from medical_imaging.datasets import load_images
    from medical_imaging.model import build_task

    marks = np.asarray(source.splits)
    task = build_task(cfg.model, len(names), cfg.in_chans).eval()
    x, y = {}, {}
    for split in SPLITS:
        idx = np.flatnonzero(marks == split)
        pixels = load_images(source, idx, cfg.image_size, cfg.in_chans)
        with torch.inference_mode():
            feats = [
                task.backbone((pixels[i : i + 256].float() - task.mean) / task.std)
                for i in range(0, len(pixels), 256)
            ]
        x[split] = torch.cat(feats).numpy()
        y[split] = np.array([names.index(source.labels[i]) for i in idx])
    return x, y


def probe_metrics(x: dict[str, np.ndarray], y: dict[str, np.ndarray], n_classes: int) -> Metrics:
    """Test AUC (macro one-vs-rest for several classes) and argmax accuracy of the probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x["train"])
    z = {k: scaler.transform(v) for k, v in x.items()}

    def auc(model, split: str) -> float:
        return roc_auc(y[split], model.predict_proba(z[split]), n_classes)

    fits = {
        c: LogisticRegression(C=c, max_iter=3000).fit(z["train"], y["train"])
        for c in (0.001, 0.01, 0.1, 1.0)
    }
    best = max(fits, key=lambda c: auc(fits[c], "val"))
    model = fits[best]
    return {
        "auc": auc(model, "test"),
        "accuracy": float(accuracy_score(y["test"], model.predict(z["test"]))),
        "C": best,
    }


def roc_auc(y: np.ndarray, probs: np.ndarray, n_classes: int) -> float:
    """Binary AUC of class 1, or the macro one-vs-rest AUC over `n_classes`."""
    from sklearn.metrics import roc_auc_score

    if n_classes == 2:
        return float(roc_auc_score(y, probs[:, 1]))
    return float(
        roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=range(n_classes))
    )


def recommender_baselines(prepared: Prepared, manifest: dict) -> dict[str, Metrics]:
    """MostPopular, ItemKNN, ALS and BPR (`recommender.implicit_mf.split_baselines`: grids
    tuned on validation, refitted on train + validation) on the split `train` draws, from the
    same folder read with the same config."""
    from recommender.data import collapse, load_dataset
    from recommender.implicit_mf import split_baselines
    from recommender.schemas import RecommenderConfig
    from recommender.split import make_split
    from shared.config import load_config

    cfg = load_config(RecommenderConfig, overrides=prepared.overrides)
    ds = load_dataset(prepared.train, cfg.event_weights, cfg.on_unknown_items, cfg.columns)
    split = make_split(cfg, collapse(ds.interactions))
    row_of = {item: row for row, item in enumerate(ds.items["item_id"])}
    figures, tuned = split_baselines(split, row_of, len(ds.items), cfg.max_history, seed=SEED)
    return {
        name: numbers(values) | ({"params": tuned[name].params} if name in tuned else {})
        for name, values in figures.items()
    }
