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


def main() -> None:
    from finance_sentiment.config import FinanceConfig
    from finance_sentiment.recipes import choose
    from finance_sentiment.training import drop_duplicates, labelled_rows, load_labelled
    from shared.data_report import DataReport

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
    result = {
        "benchmark": "finance_own60",
        "protocol": "60 own headlines (20 per class), default config, seed 0; every recipe "
        "scored by stratified 5-fold CV macro-F1 on all 60 rows (no validation rows)",
        "seconds": round(time.perf_counter() - started, 1),
        "choice": choice.as_dict(),
    }
    out = Path(__file__).parent / "results" / "finance_own60.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["choice"]["scores"], indent=2), "->", result["choice"]["recipe"])


if __name__ == "__main__":
    main()
