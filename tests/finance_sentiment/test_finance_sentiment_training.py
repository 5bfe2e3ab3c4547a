"""Training on the core contracts: the monitored metric, empty validation, settings into load."""

from __future__ import annotations

import pandas as pd
import pytest

import finance_sentiment as fs
from finance_sentiment.settings import FinanceSettings
from shared.artifacts import read_manifest
from shared.config import load_config
from shared.errors import VerticalsError
from shared.registry import build_settings, load_runtime
from shared.settings import ServeSettings


def _two_rows(folder):
    """A labelled table too small to hold out anything: the validation split is empty."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "labelled.csv"
    pd.DataFrame(
        {
            "text": ["Norvale Bank cuts outlook", "Quillon Systems raises guidance"],
            "sentiment": ["negative", "positive"],
        }
    ).to_csv(path, index=False)
    return path


def test_the_best_epoch_is_chosen_by_validation_macro_f1_and_recorded(fs_artifact):
    manifest = read_manifest(fs_artifact)
    metrics, training = manifest["metrics"], manifest["training"]
    assert (training["monitor"], training["monitor_mode"]) == ("val_macro_f1", "max")
    assert training["best_epoch"] == 1 and isinstance(training["best_epoch"], int)
    assert metrics["val_rows"] > 0 and "val_macro_f1" in metrics


def test_an_empty_validation_split_trains_and_records_the_training_loss_monitor(tmp_path):
    data = _two_rows(tmp_path / "data")
    cfg = load_config(fs.FinanceConfig, overrides=dict(fs.VERTICAL.smoke_overrides))
    artifact = fs.train(cfg, data, tmp_path / "run")
    manifest = read_manifest(artifact)
    metrics, training = manifest["metrics"], manifest["training"]
    assert (metrics["val_rows"], metrics["test_rows"]) == (0, 0)
    assert training["monitor"] == "train_loss" and training["best_epoch"] == 1
    assert not any(k.startswith("val_") and k != "val_rows" for k in metrics)


def test_monitoring_a_validation_metric_without_validation_rows_is_an_error(tmp_path):
    data = _two_rows(tmp_path / "data")
    overrides = {**fs.VERTICAL.smoke_overrides, "trainer": {"max_steps": 2, "monitor": "macro_f1"}}
    cfg = load_config(fs.FinanceConfig, overrides=overrides)
    with pytest.raises(VerticalsError, match="no evaluator"):
        fs.train(cfg, data, tmp_path / "run")


def test_alert_rules_live_under_alerts_grouped_by_rule():
    cfg = load_config(
        fs.FinanceConfig, overrides=["alerts.volume.min_volume=3", "alerts.webhook.url=http://x"]
    )
    assert cfg.alerts.volume.min_volume == 3 and cfg.alerts.negative_share.min_volume == 5
    assert cfg.alerts.webhook.url == "http://x"
    with pytest.raises(VerticalsError, match="monitor"):
        load_config(fs.FinanceConfig, overrides=["monitor.window=1h"])
    assert cfg.trainer.monitor is None and cfg.trainer.lr == 1e-3  # the vertical's defaults
    partial = load_config(fs.FinanceConfig, overrides=["trainer.epochs=1"])
    assert (partial.trainer.batch_size, partial.trainer.backbone_lr) == (16, 5e-5)


def test_settings_come_from_the_finance_environment_variables_only(monkeypatch, tmp_path):
    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("VERTICALS_FINANCE_POLL_S", "0.5")
    # neither a bare name nor the prefix without the vertical sets a finance knob
    monkeypatch.setenv("WATCH_DIR", str(tmp_path))
    monkeypatch.setenv("VERTICALS_WATCH_DIR", str(tmp_path))
    monkeypatch.setenv("VERTICALS_WEBHOOK_URL", "http://elsewhere")
    assert fs.VERTICAL.settings_cls is FinanceSettings
    settings = build_settings(fs.VERTICAL, ServeSettings(device="cpu"))
    assert isinstance(settings, FinanceSettings) and settings.device == "cpu"
    found = (settings.finance_db, settings.finance_poll_s, settings.finance_watch_dir)
    assert found == (tmp_path / "env.db", 0.5, None)
    assert settings.finance_webhook_url is None
    assert FinanceSettings(finance_db=tmp_path / "kw.db").finance_db == tmp_path / "kw.db"


def test_load_uses_the_settings_it_is_given(fs_artifact, tmp_path, monkeypatch):
    monkeypatch.delenv("VERTICALS_FINANCE_DB", raising=False)
    settings = FinanceSettings(
        device="cpu", data_dir=tmp_path / "state", max_batch_size=5, max_wait_ms=2.0
    )
    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(tmp_path / "ignored.db"))  # read by the core
    runtime = fs.VERTICAL.load(fs_artifact, settings)
    try:
        assert runtime.store.path == tmp_path / "state" / "monitor.db"  # not the environment's
        assert (runtime.engine.max_batch_size, runtime.engine.max_wait_ms) == (5, 2.0)
        assert runtime.device.type == "cpu"
    finally:
        runtime.close()
    assert not (tmp_path / "ignored.db").exists()
    with pytest.raises(TypeError, match="FinanceSettings"):
        fs.VERTICAL.load(fs_artifact, ServeSettings(device="cpu"))


def test_load_runtime_upgrades_plain_serve_settings(fs_artifact, tmp_path, monkeypatch):
    monkeypatch.setenv("VERTICALS_FINANCE_DB", str(tmp_path / "env.db"))
    runtime = load_runtime(fs.VERTICAL, fs_artifact, ServeSettings(device="cpu"))
    try:
        assert runtime.store.path == tmp_path / "env.db"
        assert runtime.predict([{"text": "Norvale Bank cuts outlook"}])[0]["label"]
    finally:
        runtime.close()
