from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recommender import VERTICAL
from shared.artifacts import read_manifest
from shared.config import load_config
from shared.registry import load_runtime
from shared.serving import ServeSettings, create_app

URL = "/v1/recommender"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec")
    data = VERTICAL.example_data(tmp / "data")
    cfg = load_config(VERTICAL.config_cls, overrides=dict(VERTICAL.smoke_overrides))
    artifact = VERTICAL.train(cfg, data, tmp / "run")
    with TestClient(create_app(VERTICAL, artifact, ServeSettings(device="cpu"))) as client:
        yield client, artifact


def test_known_user_gets_unseen_items_with_reasons(served):
    client, _ = served
    runtime = client.app.state.runtime
    body = client.get(f"{URL}/users/u0001/recommendations", params={"k": 5}).json()
    assert body["cold_start"] is False and len(body["items"]) == 5
    seen = {runtime.catalogue.records[r]["item_id"] for r in runtime.history.seen("u0001")}
    assert not seen & {i["item_id"] for i in body["items"]}
    assert all(i["reason"] for i in body["items"])


def test_unknown_user_gets_popular_items_then_content_after_first_event(served):
    client, _ = served
    cold = client.get(f"{URL}/users/stranger/recommendations", params={"k": 3}).json()
    assert cold["cold_start"] is True and cold["items"][0]["reason"].startswith(
        ("trending", "popular")
    )
    r = client.post(
        f"{URL}/events",
        json={
            "events": [
                {"user_id": "stranger", "item_id": "i0000", "event": "purchase", "event_id": "s-1"}
            ]
        },
    )
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}
    warm = client.get(f"{URL}/users/stranger/recommendations", params={"k": 3}).json()
    assert warm["cold_start"] is False and "i0000" not in {i["item_id"] for i in warm["items"]}
    again = client.post(
        f"{URL}/events",
        json={
            "events": [
                {"user_id": "stranger", "item_id": "i0000", "event": "purchase", "event_id": "s-1"}
            ]
        },
    )
    assert again.json() == {"accepted": 0, "duplicates": 1}


@pytest.mark.parametrize("k", [0, 101])
def test_k_out_of_range_is_422(served, k):
    client, _ = served
    r = client.get(f"{URL}/users/u0001/recommendations", params={"k": k})
    assert r.status_code == 422 and "k" in r.json()["detail"]


def test_event_with_unknown_item_is_422_naming_it(served):
    client, _ = served
    r = client.post(
        f"{URL}/events",
        json={"events": [{"user_id": "u1", "item_id": "nope-42", "event": "click"}]},
    )
    assert r.status_code == 422 and "nope-42" in r.json()["detail"]
    r = client.post(
        f"{URL}/events", json={"events": [{"user_id": "u1", "item_id": "i0000", "event": "hug"}]}
    )
    assert r.status_code == 422 and "events.0.event" in r.json()["detail"]


def test_adhoc_history_and_category_filter(served):
    client, _ = served
    r = client.post(
        f"{URL}/recommend",
        json={
            "history": [{"item_id": "i0000", "event": "like"}],
            "k": 3,
            "include_categories": ["books"],
        },
    )
    assert r.status_code == 200
    assert {i["category"] for i in r.json()["items"]} == {"books"}
    bad = client.post(f"{URL}/recommend", json={"history": [{"item_id": "zzz"}]})
    assert bad.status_code == 422 and "zzz" in bad.json()["detail"]


def test_new_item_is_indexed_at_once_persisted_and_similar(served, tmp_path):
    client, artifact = served
    item = {
        "item_id": "fresh-1",
        "title": "Nordic Pasta Maker",
        "category": "kitchen",
        "description": "Roll fresh tagliatelle at home.",
        "tags": "pasta|italian",
    }
    r = client.post(f"{URL}/items", json={"items": [item]})
    assert r.status_code == 200 and r.json()["added"] == 1
    sim = client.get(f"{URL}/items/fresh-1/similar", params={"k": 3})
    assert sim.status_code == 200 and len(sim.json()["items"]) == 3
    assert client.get(f"{URL}/items/missing/similar").status_code == 404
    ev = {"user_id": "reader-9", "item_id": "fresh-1", "event": "like", "event_id": "r9-1"}
    assert client.post(f"{URL}/events", json={"events": [ev]}).status_code == 200
    # a restart reads the persisted index and event log
    runtime = load_runtime(VERTICAL, artifact, ServeSettings(device="cpu"))
    assert [e.event for e in runtime.history.recent("reader-9", 5)] == ["like"]
    assert runtime.add_events([ev]) == {"accepted": 0, "duplicates": 1}
    assert (
        "fresh-1" in runtime.index.row_of and runtime.catalogue.records[-1]["item_id"] == "fresh-1"
    )


def test_malformed_items_file_is_rejected_whole(served):
    client, _ = served
    runtime = client.app.state.runtime
    before = len(runtime.index)
    csv = "item_id,title,category\nok-1,Fine Item,kitchen\nbad-1,,kitchen\n"
    r = client.post(f"{URL}/items/file", params={"format": "csv"}, content=csv.encode())
    assert r.status_code == 422 and "row 2" in r.json()["detail"] and "title" in r.json()["detail"]
    assert len(runtime.index) == before and "ok-1" not in runtime.index.row_of
    good = client.post(
        f"{URL}/items/file", params={"format": "csv"}, content=b"item_id,title\nok-2,Good\n"
    )
    assert good.status_code == 200 and "ok-2" in runtime.index.row_of


def test_cli_predict_rows(served):
    runtime = served[0].app.state.runtime
    out = runtime.predict([{"user_id": "u0002", "k": 2}, {"user_id": "nobody", "k": 2}])
    assert [o["cold_start"] for o in out] == [False, True] and all(
        len(o["items"]) == 2 for o in out
    )


def test_evaluate_reports_leave_last_out_metrics(served, tmp_path):
    client, _ = served
    data = VERTICAL.example_data(tmp_path / "data")
    metrics = VERTICAL.evaluate(client.app.state.runtime, data).metrics
    assert metrics["n_users"] > 0 and 0.0 <= metrics["retrieval_recall_at_10"] <= 1.0
    assert "ranked_ndcg_at_10" in metrics or client.app.state.runtime.ranker.kind == "none"


def test_logged_events_refresh_the_cooccurrence(served):
    client, _ = served
    runtime = client.app.state.runtime
    a, b = runtime.index.row_of["i0001"], runtime.index.row_of["i0002"]
    before, factors = runtime.stats.similarity[a, b], runtime.stats.factors
    limit = runtime.cfg.cooccurrence_refresh_events
    runtime.cfg.cooccurrence_refresh_events = 4
    try:
        events = [
            {"user_id": f"pair-{u}", "item_id": item, "event": "click"}
            for u in range(2)
            for item in ("i0001", "i0002")
        ]
        assert client.post(f"{URL}/events", json={"events": events}).json()["accepted"] == 4
    finally:
        runtime.cfg.cooccurrence_refresh_events = limit
    assert runtime.new_contacts == 0
    assert runtime.stats.similarity[a, b] > before
    deadline = time.monotonic() + 30  # the ALS factors are refitted in the background
    while runtime.stats.factors is factors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runtime.stats.factors is not factors
    assert runtime.stats.factors.n == len(runtime.stats.popularity)


def test_artifact_records_which_metric_kept_the_weights(served):
    _, artifact = served
    training = read_manifest(artifact, vertical="recommender")["training"]
    assert training["monitor"] == "val_retrieval_recall_at_10"  # the evaluator's own key
    assert training["monitor_mode"] == "max"
    assert training["best_epoch"] == 1 and training["steps"] == 2
    assert 0.0 <= training["best"] <= 1.0


def test_state_folder_and_engine_come_from_the_settings(served, tmp_path, monkeypatch):
    _, artifact = served
    monkeypatch.setenv("VERTICALS_DATA_DIR", str(tmp_path / "from-env"))  # not read by the runtime
    settings = ServeSettings(device="cpu", data_dir=tmp_path / "state", max_batch_size=7)
    runtime = VERTICAL.load(artifact, settings)
    try:
        assert runtime.live == tmp_path / "state" / "recommender"
        assert (runtime.engine.max_batch_size, runtime.engine.max_wait_ms) == (7, 0.0)
        runtime.add_items([{"item_id": "state-1", "title": "Cast Iron Pan"}])
        assert (runtime.live / "catalogue" / "items.jsonl").is_file()
        assert not (tmp_path / "from-env").exists()
    finally:
        runtime.close()


def test_index_and_catalogue_are_persisted_together(served, tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous index and catalogue, still in agreement."""
    from recommender.state import Catalogue

    _, artifact = served
    settings = ServeSettings(device="cpu", data_dir=tmp_path)
    runtime = load_runtime(VERTICAL, artifact, settings)
    runtime.add_items([{"item_id": "kept-1", "title": "Linen Apron", "category": "kitchen"}])

    def disk_full(self, path):
        raise OSError("disk full")

    monkeypatch.setattr(Catalogue, "save", disk_full)  # after the index was written
    with pytest.raises(OSError, match="disk full"):
        runtime.add_items([{"item_id": "lost-1", "title": "Copper Kettle", "category": "kitchen"}])
    runtime.close()
    monkeypatch.undo()
    again = load_runtime(VERTICAL, artifact, settings)
    try:
        ids = [r["item_id"] for r in again.catalogue.records]
        assert again.index.ids == ids and "kept-1" in ids and "lost-1" not in ids
        assert sorted(p.name for p in (tmp_path / "recommender").iterdir()) == [
            "catalogue",
            "writer.lock",
            "writer.pid",
        ]
    finally:
        again.close()


def test_training_reports_the_ranker_without_the_text_features(served):
    _, artifact = served
    metrics = read_manifest(artifact)["metrics"]
    if "ranked_ndcg_at_10" not in metrics:
        pytest.skip("the ranker fell back to the retrieval order (one class on validation)")
    assert 0.0 <= metrics["no_text_ranked_ndcg_at_10"] <= 1.0
    assert {"no_text_ranked_recall_at_10", "ranked_recall_at_10"} <= set(metrics)


def test_a_masked_ranker_ignores_the_text_features():
    from recommender.ranker import FEATURES, TEXT_FEATURES, Ranker

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES))).astype(np.float32)
    y = (x[:, FEATURES.index("model_score")] + x[:, FEATURES.index("cooccurrence")] > 0).astype(int)
    full = Ranker().fit(x, y)
    ablated = Ranker(masked=TEXT_FEATURES).fit(x, y)
    shuffled = x.copy()
    for name in TEXT_FEATURES:
        shuffled[:, FEATURES.index(name)] = rng.normal(size=len(x))
    np.testing.assert_allclose(ablated.score(x), ablated.score(shuffled))  # text has no say
    assert not np.allclose(full.score(x), full.score(shuffled))  # but it has in the full one


@pytest.mark.parametrize("user", ["team/a", "..", "50% off?", "ü/ß #1", "line\nbreak"])
def test_any_user_id_is_reachable_by_path_and_by_body(served, user):
    from urllib.parse import quote

    client, _ = served
    event = {"user_id": user, "item_id": "i0001", "event": "click"}
    assert client.post(f"{URL}/events", json={"events": [event]}).status_code == 200
    posted = client.post(f"{URL}/recommend", json={"user_id": user, "k": 3})
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert body["user_id"] == user and body["cold_start"] is False
    assert "i0001" not in {i["item_id"] for i in body["items"]}
    if user != "..":  # a dot segment is normalised out of the URL by the client
        got = client.get(f"{URL}/users/{quote(user, safe='')}/recommendations", params={"k": 3})
        assert got.status_code == 200, got.text
        assert got.json()["user_id"] == user and got.json()["items"] == body["items"]
