"""Many tenants' bots on one base encoder: X-Tenant, the LRU, mixed batches, KB writes, restarts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from customer_service import SMOKE_OVERRIDES, VERTICAL
from customer_service.config import CustomerServiceConfig, CustomerServiceSettings
from shared.config import load_config
from shared.errors import ArtifactError
from shared.models import embed_texts
from shared.registry import load_runtime
from shared.serving import create_app

# float32 serving: these compare embeddings at 1e-5 (`auto` is bf16 on a CPU with native bf16)
FP32 = CustomerServiceSettings(device="cpu", customer_service_precision="fp32")

URL = "/v1/customer_service"
TEXTS = ["I lost my card", "how much is the yearly fee", "Überweisung 🙂"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data, the served adapter bot, {tenant: its adapter bot}) on the random 2-layer BERT."""
    from customer_service.kb_data import write_demo_data
    from customer_service.training import train

    root = tmp_path_factory.mktemp("cs_tenants")
    data = write_demo_data(root / "data")

    def fit(seed: int, out: str):
        trainer = {**SMOKE_OVERRIDES["trainer"], "max_steps": 6, "warmup_ratio": 0.0, "seed": seed}
        overrides = {**SMOKE_OVERRIDES, "adapter": {"method": "lora"}, "trainer": trainer}
        return train(load_config(CustomerServiceConfig, overrides=overrides), data, root / out)

    return data, fit(0, "main"), {"acme": fit(1, "acme"), "globex": fit(2, "globex")}


@pytest.fixture()
def tenants(trained, tmp_path):
    """A tenants folder holding copies of both tenants' artifacts."""
    _, _, bots = trained
    folder = tmp_path / "tenants"
    for name, artifact in bots.items():
        shutil.copytree(artifact, folder / name)
    return folder


def _settings(folder, capacity: int = 8) -> CustomerServiceSettings:
    return CustomerServiceSettings(
        device="cpu",
        tenants_dir=folder,
        tenant_cache_size=capacity,
        customer_service_precision="fp32",
    )


def test_each_tenant_embeds_as_its_own_bot_alone_even_in_one_mixed_batch(trained, tenants):
    _, main, bots = trained
    served = load_runtime(VERTICAL, main, _settings(tenants))
    items = [(t, text) for text in TEXTS for t in (None, "acme", "globex")]
    mixed = np.stack(served.tenants.encode_items(items))
    settings = FP32
    alone = {None: load_runtime(VERTICAL, main, settings)}
    alone.update({name: load_runtime(VERTICAL, path, settings) for name, path in bots.items()})
    for row, (tenant, text) in zip(mixed, items, strict=True):
        expected = embed_texts(alone[tenant].encoder, [text])[0]
        np.testing.assert_allclose(row, expected, atol=1e-5)
    # the tenants differ from each other and from the served bot: the adapters are not no-ops
    assert np.abs(mixed[1] - mixed[0]).max() > 1e-3 and np.abs(mixed[2] - mixed[1]).max() > 1e-3


def test_x_tenant_routes_chat_and_names_a_missing_or_bad_tenant(trained, tenants):
    _, main, _ = trained
    with TestClient(create_app(VERTICAL, main, _settings(tenants))) as client:
        body = {"session_id": "s1", "message": "I lost my card"}
        for tenant in (None, "acme", "globex"):
            headers = {"X-Tenant": tenant} if tenant else {}
            reply = client.post(f"{URL}/chat", json=body, headers=headers)
            assert reply.status_code == 200 and "handoff" in reply.json()
        missing = client.post(f"{URL}/chat", json=body, headers={"X-Tenant": "initech"})
        assert missing.status_code == 404 and "initech" in missing.json()["detail"]
        bad = client.post(f"{URL}/search", json={"query": "x"}, headers={"X-Tenant": "../acme"})
        assert bad.status_code == 422
        info = client.get(f"{URL}/tenants").json()
        assert info["available"] == ["acme", "globex"] and set(info["loaded"]) == {"acme", "globex"}


def test_a_tenants_kb_write_is_its_own_and_survives_eviction_and_restart(trained, tenants):
    _, main, _ = trained
    text = "The Leeds branch opens at 9 on Saturdays."
    new = {"answers": [{"answer_id": "leeds_hours", "answer": text}]}
    acme, globex = {"X-Tenant": "acme"}, {"X-Tenant": "globex"}

    def top(client, headers):
        found = client.post(f"{URL}/search", json={"query": text, "k": 3}, headers=headers)
        return [r["answer_id"] for r in found.json()["results"]]

    with TestClient(create_app(VERTICAL, main, _settings(tenants, capacity=1))) as client:
        assert client.post(f"{URL}/kb/answers", json=new, headers=acme).status_code == 200
        assert "leeds_hours" not in top(client, globex)  # evicts acme (capacity 1)
        assert "leeds_hours" not in top(client, {})
        assert top(client, acme)[0] == "leeds_hours"  # reloaded from its folder
        assert client.get(f"{URL}/tenants").json()["evictions"] >= 2
    with TestClient(create_app(VERTICAL, main, _settings(tenants))) as client:
        assert top(client, acme)[0] == "leeds_hours"


def test_conversations_outlive_an_eviction(trained, tenants):
    _, main, _ = trained
    served = load_runtime(VERTICAL, main, _settings(tenants, capacity=1))
    served.bot_for("acme").chat("s1", "I lost my card")
    served.bot_for("globex").chat("s1", "hello")  # evicts acme
    assert "acme" not in served.tenants.cache.keys()
    assert served.bot_for("acme").sessions.get("s1") is not None


def test_a_tenant_copied_in_is_served_and_one_removed_is_404_without_restart(trained, tenants):
    _, main, bots = trained
    with TestClient(create_app(VERTICAL, main, _settings(tenants))) as client:
        body = {"session_id": "s", "message": "hello"}
        assert (
            client.post(f"{URL}/chat", json=body, headers={"X-Tenant": "hooli"}).status_code == 404
        )
        shutil.copytree(bots["acme"], tenants / "hooli")
        assert (
            client.post(f"{URL}/chat", json=body, headers={"X-Tenant": "hooli"}).status_code == 200
        )
        shutil.rmtree(tenants / "hooli")
        assert (
            client.post(f"{URL}/chat", json=body, headers={"X-Tenant": "hooli"}).status_code == 404
        )
        assert "hooli" not in client.get(f"{URL}/tenants").json()["loaded"]


def test_a_full_model_tenant_is_a_409_and_a_full_served_artifact_is_refused(
    trained, tenants, cs_trained
):
    _, main, _ = trained
    _, full = cs_trained
    shutil.copytree(full, tenants / "plain")
    with TestClient(create_app(VERTICAL, main, _settings(tenants))) as client:
        headers = {"X-Tenant": "plain"}
        reply = client.post(f"{URL}/search", json={"query": "card"}, headers=headers)
        assert reply.status_code == 409 and "not an adapter artifact" in reply.json()["detail"]
    with pytest.raises(ArtifactError, match="must be an adapter artifact"):
        load_runtime(VERTICAL, full, _settings(tenants))


def test_without_tenants_an_x_tenant_is_a_404_naming_it(trained):
    _, main, _ = trained
    with TestClient(create_app(VERTICAL, main, FP32)) as client:
        reply = client.post(
            f"{URL}/chat", json={"session_id": "s", "message": "hi"}, headers={"X-Tenant": "acme"}
        )
        assert reply.status_code == 404 and "acme" in reply.json()["detail"]
        assert client.get(f"{URL}/tenants").status_code == 404
