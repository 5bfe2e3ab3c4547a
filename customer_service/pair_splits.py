"""How the training pairs and out-of-scope questions are split, and the data report of them.

The pairs follow the core's rule (`shared.splits.resolve_splits`): their `split` column where it
fixes one, the rest drawn stratified by answer; fixed `val` or `test` pairs turn off that drawn
split, so a given test set is measured alone.
"""

from __future__ import annotations

import pandas as pd

from customer_service.config import CustomerServiceConfig
from shared.data_report import DataReport
from shared.splits import ResolvedSplits, resolve_splits


def resolve_pair_splits(pairs: pd.DataFrame, cfg: CustomerServiceConfig) -> ResolvedSplits:
    """The pairs' split indices: their `split` column, the rest drawn stratified by answer.

    Fixed `val` (or `test`) pairs turn off the drawn validation (or test) split.
    """
    return resolve_splits(
        len(pairs),
        fixed=list(pairs["split"]),
        labels=list(pairs["answer_id"]),
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.trainer.seed,
    )


def split_pairs(pairs: pd.DataFrame, cfg: CustomerServiceConfig) -> dict[str, pd.DataFrame]:
    """Train/val/test pairs (see :func:`resolve_pair_splits`)."""
    split = resolve_pair_splits(pairs, cfg)
    return {k: pairs.iloc[idx].reset_index(drop=True) for k, idx in split.indices().items()}


def split_oos(oos: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """Out-of-scope questions: their `split` column, the rest shuffled into the unfixed splits.

    As for the pairs, fixed `val` or `test` questions turn off that drawn split: the rest go
    half to each of validation and test when neither is fixed, all to the one that is not, and
    to neither when both are (the data report counts them as unused).
    """
    out = {s: oos[oos["split"] == s].reset_index(drop=True) for s in ("val", "test")}
    free = oos[~oos["split"].isin(["val", "test"])].sample(frac=1.0, random_state=seed)
    free = free.reset_index(drop=True)
    open_splits = [s for s in ("val", "test") if out[s].empty]
    cut = len(free) // 2 if len(open_splits) == 2 else len(free)
    for name, part in zip(open_splits, (free.iloc[:cut], free.iloc[cut:]), strict=False):
        out[name] = pd.concat([out[name], part], ignore_index=True)
    return out


def report_splits(
    report: DataReport,
    splits: dict[str, pd.DataFrame],
    split: ResolvedSplits,
    oos: dict[str, pd.DataFrame],
    oos_rows: int = 0,
) -> None:
    """Adds the pairs per split and intent (the answer id without one), the out-of-scope
    questions per split (`oos_rows` were read), and the warnings for small held-out splits."""
    classes = {
        k: [i or f"answer:{a}" for i, a in zip(v["intent"], v["answer_id"], strict=True)]
        for k, v in splits.items()
    }
    report.add_splits(classes, split.fixed, split.fractions)
    if oos_rows:
        report.other["out_of_scope"] = {k: len(v) for k, v in oos.items()}
    unused = oos_rows - sum(len(v) for v in oos.values())
    report.drop("out-of-scope questions without a split (val and test are fixed)", unused)
    report.check_heldout_sizes()
