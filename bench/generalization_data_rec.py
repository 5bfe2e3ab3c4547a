"""`bench.generalization`'s converters of the image and recommender data sets (the text ones
are in `bench.generalization_data`, with the shared `Caps`, `Prepared` and helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import DATA
from bench.generalization_data import (
    SEED,
    SPLITS,
    Caps,
    Prepared,
    fresh_folder,
    protocol_text,
    subsample,
)

# ---------------------------------------------------------------------------- medical_imaging


def _npz_prepared(work: Path, source: Path, names: list[str], caps: Caps, base: str) -> Prepared:
    """An npz data set with its official splits; class i is named `names[i]` (`label_map.i=`).

    With caps, a stratified subsample of each split is written to `work/data.npz`; otherwise the
    original file is read in place (it already is the vertical's format).
    """
    archive = np.load(source)
    counts = {n: int(len(archive[f"{n}_labels"])) for n in SPLITS}
    notes, path = [], source
    if any(getattr(caps, n) is not None for n in SPLITS):
        arrays: dict[str, np.ndarray] = {}
        for name in SPLITS:
            labels = archive[f"{name}_labels"].reshape(-1)
            frame = pd.DataFrame({"label": labels})
            keep = subsample(frame, getattr(caps, name), "label").index.to_numpy()
            arrays[f"{name}_images"] = archive[f"{name}_images"][keep]
            arrays[f"{name}_labels"] = archive[f"{name}_labels"][keep]
            if len(keep) < counts[name]:
                notes.append(f"{name} subsampled to {len(keep)} of {counts[name]} images")
            counts[name] = len(keep)
        path = fresh_folder(work) / "data.npz"
        np.savez(path, **arrays)
    overrides = [f"label_map.{i}={name}" for i, name in enumerate(names)]
    return Prepared(
        "medical_imaging",
        path,
        path,
        overrides,
        protocol_text(base, notes),
        tables={"npz": path, "label_map": {str(i): n for i, n in enumerate(names)}},
        counts=counts,
    )


def pneumoniamnist(work: Path, caps: Caps) -> Prepared:
    """PneumoniaMNIST 28x28: official train / val / test; 0 normal, 1 pneumonia."""
    source = DATA / "medical_imaging" / "pneumoniamnist" / "pneumoniamnist.npz"
    base = (
        "official train (4,708) / val (524) / test (624) of the npz (train rebuilt, see the data "
        "README); labels 0 -> normal, 1 -> pneumonia; evaluate scores the test arrays"
    )
    return _npz_prepared(work, source, ["normal", "pneumonia"], caps, base)


RETINA_GRADES = ["dr_grade_0", "dr_grade_1", "dr_grade_2", "dr_grade_3", "dr_grade_4"]


def retinamnist(work: Path, caps: Caps) -> Prepared:
    """RetinaMNIST 28x28 RGB: official train / val / test; 5 DR grades as 5 classes."""
    source = DATA / "medical_imaging" / "retinamnist" / "retinamnist.npz"
    base = (
        "official train (1,080) / val (120) / test (400) of the MedMNIST file; labels i -> "
        "dr_grade_i (5 classes, argmax); evaluate scores the test arrays"
    )
    return _npz_prepared(work, source, RETINA_GRADES, caps, base)


# ---------------------------------------------------------------------------- recommender


def _keep_users(events: pd.DataFrame, limit: int | None, user_col: str) -> pd.DataFrame:
    """The interactions of at most `limit` users drawn with `SEED` (all users when None)."""
    users = events[user_col].drop_duplicates()
    if limit is None or len(users) <= limit:
        return events
    kept = set(users.sample(n=limit, random_state=SEED))
    return events[events[user_col].isin(kept)]


def _rec_prepared(
    work: Path,
    items: pd.DataFrame,
    events: pd.DataFrame,
    overrides: list[str],
    base: str,
    caps: Caps,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> Prepared:
    """Writes `items.csv` and `interactions.csv`; train and evaluate both read the folder (the
    artifact's protocol holds the test items out of it)."""
    n_users = events[user_col].nunique()
    events = _keep_users(events, caps.users, user_col)
    items = items[items[item_col].isin(set(events[item_col]))]
    notes = []
    if events[user_col].nunique() < n_users:
        notes.append(f"users subsampled to {events[user_col].nunique()} of {n_users}")
    folder = fresh_folder(work)
    items.to_csv(folder / "items.csv", index=False)
    events.to_csv(folder / "interactions.csv", index=False)
    protocol = base + (f"; {', '.join(notes)} (seed {SEED})" if notes else "")
    return Prepared(
        "recommender",
        folder,
        folder,
        overrides,
        protocol,
        tables={"folder": folder},
        counts={
            "users": int(events[user_col].nunique()),
            "items": len(items),
            "interactions": len(events),
        },
    )


def movietweetings_100k(work: Path, caps: Caps) -> Prepared:
    """MovieTweetings 100K, 5-core, the default leave-last-out (last new item test, the one
    before it validation); every rating an interaction (event `rating`, value = the score)."""
    from bench.recommender_movietweetings import read_movietweetings

    items, events = read_movietweetings(DATA / "recommender" / "movietweetings_100k")
    base = (
        "5-core (iterated); leave-last-out by time (each user's last new item test, the one "
        "before it validation); full ranking over all items, seen items excluded"
    )
    return _rec_prepared(work, items, events, [], base, caps)


def movietweetings_100k_random(work: Path, caps: Caps) -> Prepared:
    """MovieTweetings 100K, 5-core, random 75/25 holdout per user (Microsoft Recommenders)."""
    from bench.recommender_movietweetings import read_movietweetings

    items, events = read_movietweetings(DATA / "recommender" / "movietweetings_100k")
    overrides = ["split=random_holdout", "holdout_fraction=0.25", f"split_seed={SEED}"]
    base = (
        f"5-core (iterated); random holdout per user: 25% of each user's items test (seed "
        f"{SEED}), 25% of the rest validation; full ranking, training items excluded"
    )
    return _rec_prepared(work, items, events, overrides, base, caps)


def lastfm_hetrec2011_2k(work: Path, caps: Caps) -> Prepared:
    """Last.fm HetRec 2K: every (user, artist) pair an interaction (event `click`; the files have
    no time, so one constant timestamp); artist name as the item text; random 80/20 per user."""
    folder = DATA / "recommender" / "lastfm_hetrec2011_2k"
    events = pd.read_csv(
        folder / "user_artists.dat", sep="\t", dtype={"userID": str, "artistID": str}
    )
    artists = pd.read_csv(
        folder / "artists.dat", sep="\t", dtype={"id": str}, usecols=["id", "name"], quoting=3
    )
    items = artists.rename(columns={"id": "artistID"})
    items["name"] = items["name"].fillna("").astype(str).str.strip().replace("", "(unnamed)")
    events = events.assign(event="click", ts="2011-01-01T00:00:00Z")[
        ["userID", "artistID", "event", "ts"]
    ]
    overrides = [
        "columns.user_id=userID",
        "columns.item_id=artistID",
        "columns.title=name",
        "split=random_holdout",
        "holdout_fraction=0.2",
        f"split_seed={SEED}",
    ]
    base = (
        "binarised play counts (every user-artist pair one `click`, one constant timestamp: the "
        f"data have none); random holdout per user: 20% of each user's artists test (seed {SEED}),"
        " 20% of the rest validation; item text = artist name; full ranking over all artists"
    )
    return _rec_prepared(work, items, events, overrides, base, caps, "userID", "artistID")


def amazon_scientific_unisrec(work: Path, caps: Caps) -> Prepared:
    """Amazon Industrial & Scientific (UniSRec): each user's official test sequence (history +
    target) as interactions one day apart; item text from `Scientific.text`; leave-last-out."""
    folder = DATA / "recommender" / "amazon_scientific_unisrec"
    index = pd.read_csv(
        folder / "Scientific.item2index",
        sep="\t",
        header=None,
        names=["asin", "item_id"],
        dtype=str,
    )
    text = pd.read_csv(folder / "Scientific.text", sep="\t", dtype=str, quoting=3)
    text.columns = ["asin", "title"]
    items = index.merge(text, on="asin", how="left")[["item_id", "title"]]
    items["title"] = items["title"].fillna("").str.strip()
    seqs = pd.read_csv(folder / "Scientific.test.inter", sep="\t", dtype=str)
    seqs.columns = ["user_id", "history", "target"]
    start = pd.Timestamp("2018-01-01", tz="UTC")
    rows, repeats = [], 0
    for user, history, target in seqs.itertuples(index=False):
        sequence = history.split() + [target]
        repeats += target in sequence[:-1]
        for pos, item in enumerate(sequence):
            ts = (start + pd.Timedelta(days=pos)).isoformat()
            rows.append((user, item, "purchase", ts))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event", "ts"])
    base = (
        "official leave-one-out through the product's leave_last_out: each user's test sequence "
        "(history + target, the history capped at 50 upstream) as interactions one day apart; "
        f"repeats collapse to the first contact, so the {repeats} users whose official target "
        "repeats an earlier item are tested on their last new item; item text = "
        "'title. categories. brand.'; full ranking over all items"
    )
    return _rec_prepared(work, items, events, [], base, caps)
