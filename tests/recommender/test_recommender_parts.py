from __future__ import annotations

import numpy as np
import torch

from recommender.baselines import ItemKNN, MostPopular, interaction_matrix
from recommender.metrics import relevant_ranks
from recommender.ranker import FEATURES, Ranker
from recommender.rules import allowed, diversify, fresh_slot
from recommender.schemas import RulesConfig
from recommender.towers import UserTower, make_examples

CATS = np.asarray(["a", "a", "a", "b", "b", "c"], dtype=object)


def test_allowed_excludes_seen_and_filters_categories():
    rows = np.arange(6)
    cfg = RulesConfig(exclude_categories=["c"])
    assert allowed(rows, CATS, {0}, cfg).tolist() == [False, True, True, True, True, False]
    assert allowed(rows, CATS, set(), cfg, include=["b"]).tolist() == [False] * 3 + [
        True,
        True,
        False,
    ]


def test_category_cap_and_mmr_diversify():
    emb = np.eye(6, dtype=np.float32)
    emb[1] = emb[0]  # items 0 and 1 are duplicates
    picked = diversify(
        np.arange(6), np.linspace(1, 0, 6), CATS, emb, 3, RulesConfig(category_cap=1)
    )
    assert picked == [0, 3, 5]
    mmr = diversify(
        np.arange(6),
        np.asarray([1.0, 0.99, 0.5, 0.4, 0.3, 0.2]),
        CATS,
        emb,
        2,
        RulesConfig(diversity="mmr", mmr_lambda=0.5),
    )
    assert mmr == [0, 2]


def test_fresh_slot_gives_a_cold_item_exposure():
    popularity = np.asarray([50, 40, 30, 20, 0, 10], dtype=float)
    picked, fresh = fresh_slot([0, 1, 2], np.asarray([0, 1, 2, 4, 3]), popularity, 3, RulesConfig())
    assert fresh == 4 and picked == [0, 1, 4]
    _, none = fresh_slot(
        [0, 1, 2], np.asarray([0, 1, 2, 4]), popularity, 3, RulesConfig(fresh_slots=0)
    )
    assert none is None


def test_ranker_learns_popularity_and_roundtrips_as_json():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURES))).astype(np.float32)
    y = (x[:, 2] + 0.3 * rng.normal(size=2000) > 1.0).astype(int)
    ranker = Ranker().fit(x, y)
    assert ranker.params["coef"][2] > 1.0
    clone = Ranker.from_json(ranker.to_json())
    assert np.allclose(clone.score(x), ranker.score(x))
    assert np.array_equal(Ranker("none").score(x), x[:, 0])


def test_user_tower_prefers_recent_and_strong_events():
    tower = UserTower(4, 5)
    hist = torch.eye(4)[:2].unsqueeze(0)  # item 0 most recent, item 1 older
    mask = torch.ones(1, 2, dtype=torch.bool)
    u = tower(hist, mask, torch.ones(1, 2))
    assert u[0, 0] > u[0, 1]
    u2 = tower(hist, mask, torch.tensor([[1.0, 10.0]]))  # the older item was a purchase
    assert u2[0, 1] > u2[0, 0]
    empty = tower(hist, torch.zeros(1, 2, dtype=torch.bool), torch.ones(1, 2))
    assert torch.isfinite(empty).all()


def test_examples_are_next_item_with_recent_first():
    seqs = {"u": {"items": np.asarray([5, 6, 7]), "weights": np.asarray([1.0, 2.0, 3.0])}}
    ex = make_examples(seqs, max_history=1)
    assert [(e[0].tolist(), e[2]) for e in ex] == [([5], 6), ([6], 7)]


def test_baselines_and_full_ranking():
    hist = [np.asarray([0, 1]), np.asarray([0, 1]), np.asarray([2]), np.asarray([0])]
    train = interaction_matrix(hist, 4)
    assert MostPopular(train).scores([np.asarray([3])])[0].argmax() == 0
    knn = ItemKNN(train).scores([np.asarray([0])])[0]
    assert knn.argmax() == 1  # co-occurs with item 0
    scores = np.asarray([[0.9, 0.8, 0.1, 0.5]])
    assert relevant_ranks(scores, [np.asarray([3])], [np.asarray([0])]).tolist() == [[2]]


def test_item_similarity_and_behavioural_candidate_sources():
    from recommender.pipeline import add_sources
    from recommender.ranker import ItemStats, item_similarity

    users = [np.asarray([0, 1]), np.asarray([0, 1]), np.asarray([2, 3]), np.asarray([1])]
    sim = item_similarity(users, 5, k=1)
    assert sim[0, 1] > 0 and sim[0, 2] == 0 and sim.diagonal().sum() == 0
    assert all(sim[i].nnz <= 1 for i in range(5))
    stats = ItemStats(
        np.asarray([1.0, 3, 1, 1, 5]), np.zeros(5), np.zeros(5), CATS[:5], item_similarity(users, 5)
    )
    emb = np.eye(5, dtype=np.float32)
    rows, scores = add_sources(np.asarray([[2]]), emb[[2]], emb, [np.asarray([0])], stats, 1)
    # retrieved, co-interacted with item 0, then (no ALS factors here) the most popular ones
    assert rows.tolist() == [[2, 1, 4, 3]]
    assert scores[0, 0] == 1.0


def test_cooccurrence_features_match_a_direct_computation():
    from recommender.ranker import FEATURES, ItemStats, candidate_features, item_similarity

    rng = np.random.default_rng(0)
    users = [rng.choice(8, size=4, replace=False) for _ in range(30)]
    sim = item_similarity(users, 8)
    stats = ItemStats(
        np.ones(8), np.zeros(8), np.zeros(8), np.asarray(list("aabbccdd"), object), sim
    )
    emb = np.eye(8, dtype=np.float32)
    hist = [np.asarray([3, 1, 0]), np.asarray([5])]  # most recent first
    cands = np.asarray([[2, 4, 6], [0, 1, 7]])
    x = candidate_features(cands, np.zeros((2, 3), np.float32), hist, emb, stats)
    dense = sim.toarray()
    col = {name: i for i, name in enumerate(FEATURES)}
    for i, h in enumerate(hist):
        np.testing.assert_allclose(
            x[i, :, col["cooccurrence"]], dense[h][:, cands[i]].sum(0), rtol=1e-5
        )
        decayed = (0.8 ** np.arange(len(h)))[:, None] * dense[h][:, cands[i]]
        np.testing.assert_allclose(x[i, :, col["recent_cooccurrence"]], decayed.sum(0), rtol=1e-5)
        np.testing.assert_allclose(
            x[i, :, col["last_item_cooccurrence"]], dense[h[0], cands[i]], rtol=1e-5
        )
        best = np.argmax(x[i, :, col["cooccurrence"]])
        assert x[i, best, col["log_cooccurrence_rank"]] == 0.0


def test_a_second_writer_process_fails_clearly(tmp_path):
    import subprocess
    import sys

    import pytest

    from recommender.state import WriterLock
    from shared.errors import InputError

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, filelock; f = filelock.FileLock(sys.argv[1]); f.acquire(); print('held', flush=True);"
            " sys.stdin.read()",
            str(tmp_path / "writer.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "writer.pid").write_text(str(holder.pid))
        with pytest.raises(InputError, match=f"another worker \\(pid {holder.pid}\\)") as err:
            WriterLock(tmp_path).acquire()
        assert err.value.status_code == 409
    finally:
        holder.communicate("")
    lock = WriterLock(tmp_path)
    lock.acquire()  # free once the other process is gone
    WriterLock(tmp_path).acquire()  # runtimes in one process share the lock
    lock.release()


def test_items_with_few_users_get_their_own_text_features():
    from recommender.ranker import FEATURES, FEW_USERS, ItemStats, candidate_features

    popularity = np.asarray([0, FEW_USERS, FEW_USERS + 1, 50], dtype=float)
    stats = ItemStats(popularity, np.zeros(4), np.zeros(4), np.asarray(list("aaaa"), object))
    emb = np.eye(4, dtype=np.float32)
    scores = np.asarray([[0.9, 0.8, 0.7, 0.6]], np.float32)
    x = candidate_features(np.asarray([[0, 1, 2, 3]]), scores, [np.asarray([0])], emb, stats)[0]
    col = {name: i for i, name in enumerate(FEATURES)}
    assert x[:, col["few_users"]].tolist() == [1, 1, 0, 0]
    np.testing.assert_allclose(x[:, col["few_users_model_score"]], [0.9, 0.8, 0, 0])
    # the similarity to the history (item 0) only for the items with few users
    assert x[:, col["few_users_history_similarity"]].tolist() == [1, 0, 0, 0]


def test_a_ranker_fitted_on_the_earlier_features_still_scores_as_it_did():
    from recommender.ranker import FEATURES, Ranker

    old = list(FEATURES[:14])  # the list before the few-users features
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, len(FEATURES))).astype(np.float32)
    coef = rng.normal(size=len(old))
    params = {"features": old, "mean": [0.0] * 14, "scale": [1.0] * 14, "coef": coef.tolist()}
    ranker = Ranker.from_json({"kind": "logistic", "params": {**params, "intercept": 0.5}})
    np.testing.assert_allclose(ranker.score(x), x[:, :14] @ coef + 0.5, rtol=1e-5)


def test_als_factors_score_a_history_by_its_taste_and_feed_the_ranker():
    from recommender.factors import ItemFactors
    from recommender.pipeline import add_sources
    from recommender.ranker import FEATURES, ItemStats, candidate_features

    rng = np.random.default_rng(0)  # two tastes: items 0-9 and items 10-19
    users = [rng.choice(10, 4, replace=False) + 10 * (u % 2) for u in range(200)]
    factors = ItemFactors.fit(users, 20)
    hist = [np.asarray([0, 1, 2]), np.asarray([12, 13]), np.zeros(0, np.int64)]
    cands = np.asarray([[5, 15, -1], [5, 15, -1], [5, 15, -1]])
    scores = factors.scores(hist, cands)
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]
    assert scores[:, 2].tolist() == [0, 0, 0] and scores[2].tolist() == [0, 0, 0]
    assert set(factors.top(hist[:1], 5)[0]) <= set(range(10))  # its own taste first
    factors.extend(2)
    assert factors.scores(hist[:1], np.asarray([[20, 21]])).tolist() == [[0, 0]]

    stats = ItemStats(
        np.full(22, 10.0), np.zeros(22), np.zeros(22), np.asarray(["a"] * 22, object), None, factors
    )
    emb = np.eye(22, dtype=np.float32)
    rows, _ = add_sources(np.asarray([[21]]), emb[[21]], emb, hist[:1], stats, 2)
    assert set(rows[0, 1:3]) <= set(range(3, 10))  # the ALS picks: unseen items of its taste
    x = candidate_features(cands[:2], np.zeros((2, 3), np.float32), hist[:2], emb, stats)
    col = FEATURES.index("mf_score")
    np.testing.assert_allclose(x[:, :2, col], scores[:2, :2], rtol=1e-5)
    assert x[0, 0, FEATURES.index("log_mf_rank")] == 0.0  # item 5 is user 0's best candidate
