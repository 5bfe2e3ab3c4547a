"""Training through the shared loop: the item cache follows the weights, the kept weights are the
ones the returned embeddings come from, and the evaluator names its real metric."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import VERTICAL, training
from recommender.data import collapse, load_dataset
from recommender.schemas import RecommenderConfig, RecTrainerConfig
from recommender.split import leave_last_out, time_cutoff
from shared.devices import seed_everything
from shared.models import embed_texts


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    ds = load_dataset(
        VERTICAL.example_data(tmp_path_factory.mktemp("shop")), RecommenderConfig().event_weights
    )
    return ds, {item: row for row, item in enumerate(ds.items["item_id"])}


def _cfg() -> RecommenderConfig:
    trainer = RecTrainerConfig(
        epochs=2, batch_size=32, lr=1e-3, device="cpu", progress=False, tensorboard=False
    )
    return RecommenderConfig(model="random:bert-tiny", max_seq_length=32, trainer=trainer)


class Spy:
    """Records the item cache each forward reads and a fresh catalogue embedding per epoch."""

    def __init__(self, monkeypatch, texts: list[str]) -> None:
        self.texts, self.forwards, self.epoch_end = texts, [], []
        real_fit = training.fit

        def fit(task, *args, callbacks=(), **kwargs):
            self.task, forward = task, task.forward

            def spy_forward(batch):
                self.forwards.append(
                    (len(self.epoch_end), task.item_cache.detach().cpu().numpy().copy())
                )
                return forward(batch)

            task.forward = spy_forward
            return real_fit(task, *args, callbacks=[*callbacks, self], **kwargs)

        monkeypatch.setattr(training, "fit", fit)

    def on_epoch_end(self, state) -> None:  # runs after the recommender's own callback
        state.task.eval()
        self.epoch_end.append(embed_texts(state.task.backbone, self.texts))

    def caches_of(self, epoch: int) -> list[np.ndarray]:
        return [cache for e, cache in self.forwards if e == epoch]


def test_item_cache_is_refreshed_every_epoch_without_validation_users(shop, tmp_path, monkeypatch):
    ds, row_of = shop
    collapsed = collapse(ds.interactions)
    split = time_cutoff(collapsed, collapsed["ts"].quantile(0.8))
    assert not len(split.val)  # no validation users: no evaluator
    spy = Spy(monkeypatch, list(ds.items["text"]))
    seed_everything(0)
    towers = training.fit_towers(_cfg(), ds.items, split, row_of, tmp_path / "run")
    assert towers.result.monitor == "train_loss" and len(towers.result.history) == 2
    first, second = spy.caches_of(0), spy.caches_of(1)
    assert first and second
    # epoch 2 reads the catalogue as embedded by the weights epoch 1 left, not the initial one
    assert np.abs(second[0] - first[0]).max() > 1e-3
    np.testing.assert_allclose(second[0], spy.epoch_end[0], atol=1e-5)
    assert all(np.array_equal(c, second[0]) for c in second)


def test_returned_embeddings_come_from_the_best_epoch_when_it_is_not_the_last(
    shop, tmp_path, monkeypatch
):
    ds, row_of = shop
    split = leave_last_out(collapse(ds.interactions))
    assert len(split.val)
    calls = []

    def evaluate_model(users, emb, val, *args, **kwargs):  # the first epoch scores best
        calls.append(emb.copy())
        return {"retrieval_recall_at_10": 1.0 / len(calls), "retrieval_mrr": 0.0}

    monkeypatch.setattr(training, "evaluate_model", evaluate_model)
    spy = Spy(monkeypatch, list(ds.items["text"]))
    seed_everything(0)
    towers = training.fit_towers(_cfg(), ds.items, split, row_of, tmp_path / "run")
    result = towers.result
    assert (result.monitor, result.monitor_mode) == ("val_retrieval_recall_at_10", "max")
    assert result.best_epoch == 1 and len(result.history) == 2
    assert "val_retrieval_mrr" in result.history[0]  # the evaluator's keys, not renamed
    # the evaluator read each epoch's refreshed cache
    np.testing.assert_allclose(calls[0], spy.epoch_end[0], atol=1e-5)
    np.testing.assert_allclose(calls[1], spy.epoch_end[1], atol=1e-5)
    fresh = embed_texts(towers.encoder, list(ds.items["text"]))
    np.testing.assert_allclose(towers.emb, fresh, atol=1e-5)
    np.testing.assert_allclose(towers.emb, spy.epoch_end[0], atol=1e-5)
    assert np.abs(towers.emb - spy.epoch_end[1]).max() > 1e-3  # not the last epoch's
    # what the towers read histories from after training is the same catalogue
    np.testing.assert_allclose(spy.task.item_cache.cpu().numpy(), towers.emb, atol=1e-6)
