"""The "60 rows of one's own" case of issue 12: recipes compared by 5-fold CV on 60 headlines.

The 60 headlines below were written for this check (20 per class, invented companies; every
company appears once in each class, so its name gives nothing away). The default config
(MiniLM, seed 0) runs `finance_sentiment.recipes.choose` with all 60 rows as training rows and
no validation rows, so `auto` decides by stratified 5-fold cross-validation, as it does for a
user's small table. Writes `bench/results/finance_own60.json`.

    OMP_NUM_THREADS=1 python -m bench.finance_own60
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

NEGATIVE = [
    "Brantwell Motors recalls 40,000 vans over brake faults",
    "Ostrava Mining swings to a quarterly loss as copper slumps",
    "Pellridge Insurance cuts its dividend after storm claims",
    "Shares of Veyra Foods sink after auditors flag accounting gaps",
    "Calder Airlines warns fuel costs will wipe out summer profit",
    "Moody's downgrades Telvane Group to junk",
    "Hollis Pharma trial misses its main goal, stock tumbles",
    "Regulators fine Dunmore Bank for money-laundering lapses",
    "Kestrel Retail to close 120 stores and cut 3,000 jobs",
    "Arvo Chemicals lowers full-year outlook on weak demand",
    "Sable Energy's refinery outage hits output for a third month",
    "Investors flee Quorra Tech after CEO resigns amid probe",
    "Marlow Steel posts deepest loss in a decade",
    "Fenwick Telecom loses key government contract",
    "Bondholders reject Elstree Property's rescue plan",
    "Corran Logistics misses revenue estimates as volumes fall",
    "Tidewell Bank sets aside more for bad loans",
    "Nyland Semiconductor delays new plant, citing cash crunch",
    "Gresham Apparel warns of covenant breach",
    "Orla Biotech halts study after patient safety concerns",
]
NEUTRAL = [
    "Brantwell Motors to hold its annual meeting on May 14",
    "Ostrava Mining appoints a new chief financial officer",
    "Pellridge Insurance will report results after the market closes",
    "Veyra Foods completes the move of its headquarters to Leeds",
    "Calder Airlines publishes its winter timetable",
    "Telvane Group names two independent directors",
    "Hollis Pharma presents data at a medical conference next week",
    "Dunmore Bank's shares were unchanged in early trading",
    "Kestrel Retail confirms the date of its trading update",
    "Arvo Chemicals lists its bonds on the Luxembourg exchange",
    "Sable Energy files its annual report with regulators",
    "Quorra Tech opens an office in Singapore",
    "Marlow Steel says talks with unions will resume Monday",
    "Fenwick Telecom renames its consumer division",
    "Elstree Property sets the record date for its dividend",
    "Corran Logistics hosts an investor day in March",
    "Tidewell Bank updates its branch opening hours",
    "Nyland Semiconductor's chairman will retire as planned next year",
    "Gresham Apparel moves its listing to the main market",
    "Orla Biotech adds a new site to its ongoing trial",
]
POSITIVE = [
    "Brantwell Motors lifts annual profit forecast on strong van sales",
    "Ostrava Mining beats estimates as output hits a record",
    "Pellridge Insurance raises its dividend by 15%",
    "Veyra Foods shares jump after a blowout quarter",
    "Calder Airlines returns to profit as bookings surge",
    "S&P upgrades Telvane Group to investment grade",
    "Hollis Pharma wins approval for its migraine drug",
    "Dunmore Bank posts record earnings and expands buyback",
    "Kestrel Retail's online sales soar 40%",
    "Arvo Chemicals wins a multiyear supply deal with a carmaker",
    "Sable Energy's new field starts production ahead of schedule",
    "Quorra Tech signs its largest cloud contract yet",
    "Marlow Steel margins widen as prices recover",
    "Fenwick Telecom adds more subscribers than analysts expected",
    "Elstree Property sells its office portfolio at a premium",
    "Corran Logistics raises guidance after a strong holiday season",
    "Tidewell Bank's loan growth beats forecasts",
    "Nyland Semiconductor orders backlog doubles",
    "Gresham Apparel swings back to profit on cost cuts",
    "Orla Biotech's cancer drug shows strong trial results",
]


def nested_cv(cfg, rows, folder: Path, folds: int = 5, seed: int = 1) -> dict:
    """`auto` scored as a user gets it: on each outer fold it chooses by its own inner CV on the
    other rows, refits, and is scored on the held-out rows it never saw; each fixed recipe is
    scored on the same outer folds, for the comparison."""
    import numpy as np
    import torch
    from sklearn.model_selection import StratifiedKFold

    from finance_sentiment.recipes import fit_by_recipe
    from finance_sentiment.training import predict_probs
    from shared.recipes import macro_f1

    labels = np.array([r[1] for r in rows])
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores: dict[str, list[float]] = {}
    chosen = []
    for k, (fit_idx, eval_idx) in enumerate(splitter.split(np.zeros(len(rows)), labels)):
        fit_rows, eval_rows = [rows[i] for i in fit_idx], [rows[i] for i in eval_idx]
        for recipe in ("auto", "frozen", "fewshot", "finetune"):
            run = cfg.model_copy(update={"recipe": recipe})
            task, _, collate, _, choice = fit_by_recipe(
                run, fit_rows, [], 0, folder / f"{k}{recipe}"
            )
            if recipe == "auto":
                chosen.append(choice.recipe)
            task.eval()
            with torch.inference_mode():
                probs, _ = predict_probs(task, collate, eval_rows)
            scores.setdefault(recipe, []).append(macro_f1(labels[eval_idx], probs.argmax(1)))
    means = {name: float(np.mean(v)) for name, v in scores.items()}
    best = max((n for n in means if n != "auto"), key=means.get)
    return {
        "folds": folds,
        "seed": seed,
        "macro_f1": means,
        "fold_macro_f1": scores,
        "auto_chose": chosen,
        "best_single_recipe": best,
        "auto_minus_best": means["auto"] - means[best],
    }


def main() -> None:
    import argparse

    from finance_sentiment.config import FinanceConfig
    from finance_sentiment.recipes import choose
    from finance_sentiment.training import drop_duplicates, labelled_rows, load_labelled
    from shared.data_report import DataReport

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nested", action="store_true", help="also score auto by nested CV (~15 min)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = (
        [(t, "negative") for t in NEGATIVE]
        + [(t, "neutral") for t in NEUTRAL]
        + [(t, "positive") for t in POSITIVE]
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "own60.csv"
        pd.DataFrame(rows, columns=["text", "sentiment"]).to_csv(path, index=False)
        cfg = FinanceConfig(model="minilm")  # the defaults: what a user gets
        cfg.trainer.progress = False
        df = load_labelled(path, cfg)
        df = drop_duplicates(df, DataReport(str(path), rows_read=len(df)))
        data = labelled_rows(cfg, df, path)
        started = time.perf_counter()
        choice, _ = choose(cfg, data.rows, [], 0, Path(tmp) / "run")
        nested = nested_cv(cfg, data.rows, Path(tmp) / "nested") if args.nested else None
    result = {
        "benchmark": "finance_own60",
        "protocol": "60 own headlines (20 per class), default config, seed 0; every recipe "
        "scored by stratified 5-fold CV macro-F1 on all 60 rows (no validation rows); with "
        "--nested, auto (choosing by its own inner CV) and each fixed recipe scored on the "
        "same outer 5 folds (seed 1)",
        "seconds": round(time.perf_counter() - started, 1),
        "choice": choice.as_dict(),
        **({"nested_cv": nested} if nested else {}),
    }
    out = Path(__file__).parent / "results" / "finance_own60.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["choice"]["scores"], indent=2), "->", result["choice"]["recipe"])
    if nested:
        print("nested CV macro-F1:", json.dumps(nested["macro_f1"]), nested["auto_chose"])


if __name__ == "__main__":
    main()
