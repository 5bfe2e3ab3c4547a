"""all-mpnet-base-v2 from its split-zip packages: assembled once, checked, rebuilt when damaged."""

from __future__ import annotations

import zipfile

import pytest

import shared.mpnet as mpnet
from shared.errors import ModelUnavailableError


def _fake_parts(tmp_path, weights: bytes = b"weights") -> list:
    """A tiny sentence-transformers-like folder zipped and split into five pieces, as published."""
    archive = tmp_path / "full.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/model.safetensors", weights)
    data = archive.read_bytes()
    size = -(-len(data) // 5)
    parts = []
    for i in range(5):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(data[i * size : (i + 1) * size])
        parts.append(part)
    return parts


@pytest.fixture
def fake(tmp_path, monkeypatch):
    import hashlib

    (tmp_path / "parts").mkdir()
    parts = _fake_parts(tmp_path / "parts")
    monkeypatch.setattr(mpnet, "part_files", lambda: parts)
    monkeypatch.setattr(mpnet, "WEIGHTS_SHA256", hashlib.sha256(b"weights").hexdigest())
    monkeypatch.setenv("VERTICALS_CACHE_DIR", str(tmp_path / "cache"))
    mpnet.mpnet_path.cache_clear()
    yield tmp_path / "cache" / mpnet.FOLDER
    mpnet.mpnet_path.cache_clear()


def test_pieces_are_joined_unzipped_and_cached(fake, monkeypatch):
    folder = mpnet.mpnet_path()
    assert folder == fake and (folder / "model.safetensors").read_bytes() == b"weights"
    assert (folder / "modules.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [mpnet.FOLDER]  # no scratch left behind
    mpnet.mpnet_path.cache_clear()
    monkeypatch.setattr(mpnet, "part_files", lambda: pytest.fail("the cache must be reused"))
    assert mpnet.mpnet_path() == folder


def test_a_damaged_cache_is_rebuilt(fake):
    folder = mpnet.mpnet_path()
    (folder / "model.safetensors").write_bytes(b"truncated")
    mpnet.mpnet_path.cache_clear()
    assert (mpnet.mpnet_path() / "model.safetensors").read_bytes() == b"weights"


def test_pieces_that_do_not_match_the_checksum_are_refused(fake, monkeypatch):
    monkeypatch.setattr(mpnet, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(ModelUnavailableError, match="do not match their sha256"):
        mpnet.mpnet_path()
    assert not fake.exists()


def test_missing_packages_name_the_extra(monkeypatch):
    monkeypatch.setattr(mpnet, "PARTS", ("no-such-package-part-001",))
    with pytest.raises(ModelUnavailableError, match=r"pip install 'verticals\[large\]'"):
        mpnet.part_files()


@pytest.mark.slow
def test_the_packaged_mpnet_loads_as_a_sentence_transformer(tmp_path, monkeypatch):
    try:
        mpnet.part_files()
    except ModelUnavailableError:
        pytest.skip("the 'large' extra (all-mpnet-base-v2 pieces) is not installed")
    from shared.models import load_model

    monkeypatch.setenv("VERTICALS_CACHE_DIR", str(tmp_path))
    mpnet.mpnet_path.cache_clear()
    encoder = load_model("mpnet", "sentence-encoder")
    vectors = encoder.encode(
        ["shares plunge", "shares fall sharply", "a cat"], normalize_embeddings=True
    )
    assert vectors.shape == (3, 768)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    mpnet.mpnet_path.cache_clear()
