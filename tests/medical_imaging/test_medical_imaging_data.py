"""Image sources, patient-level splits, model inputs and augmentations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medical_imaging.config import AugmentConfig
from medical_imaging.datasets import load_images, read_source, split_source
from medical_imaging.synthetic import make_scan, write_dataset, write_png
from medical_imaging.transforms import build_augment, to_model_input, tta_views
from shared.errors import DataError


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("scans"),
        n_patients=30,
        images_per_patient=3,
        size=24,
        dicom_every=5,
    )


def test_manifest_reads_paths_labels_and_patients(manifest):
    source = read_source(manifest)
    assert len(source) == 90
    assert set(source.labels) == {"lesion", "normal"}
    assert source.groups is not None and len(set(source.groups)) == 30
    assert all(p.is_file() for p in source.paths)
    assert sum(p.suffix == ".dcm" for p in source.paths) == 18


def test_patient_level_split_keeps_each_patient_in_one_split(manifest):
    source = read_source(manifest)
    splits = split_source(source, 0.2, 0.2, seed=0)
    patients = {k: {source.groups[i] for i in idx} for k, idx in splits.items()}
    assert all(len(v) > 0 for v in splits.values())
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(v) for v in splits.values()) == 90


def test_manifest_split_column_is_respected(tmp_path, manifest):
    df = pd.read_csv(manifest)
    df["split"] = ["train"] * 60 + ["val"] * 15 + ["test"] * 15
    df["path"] = [str(manifest.parent / p) for p in df["path"]]
    df.to_csv(tmp_path / "m.csv", index=False)
    splits = split_source(read_source(tmp_path / "m.csv"), 0.2, 0.2, seed=0)
    assert splits["val"].tolist() == list(range(60, 75))


def test_manifest_errors_name_file_row_and_column(tmp_path, manifest):
    df = pd.read_csv(manifest)
    df["path"] = [str(manifest.parent / p) for p in df["path"]]
    df.loc[2, "path"] = str(tmp_path / "gone.png")
    df.to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(DataError, match=r"missing.csv: row 3, column 'path': .*gone.png not found"):
        read_source(tmp_path / "missing.csv")
    df = pd.read_csv(manifest).drop(columns=["label"])
    df.to_csv(tmp_path / "nolabel.csv", index=False)
    with pytest.raises(DataError, match=r"nolabel.csv: missing required column\(s\) \['label'\]"):
        read_source(tmp_path / "nolabel.csv")
    df = pd.read_csv(manifest).assign(split="training")
    df.to_csv(tmp_path / "badsplit.csv", index=False)
    with pytest.raises(DataError, match=r"row 1, column 'split': 'training' is not one of"):
        read_source(tmp_path / "badsplit.csv")


def test_unreadable_image_in_a_manifest_names_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not really a png")
    pd.DataFrame({"path": ["broken.png"], "label": ["a"]}).to_csv(tmp_path / "m.csv", index=False)
    source = read_source(tmp_path / "m.csv")
    with pytest.raises(DataError, match="broken.png: not an image"):
        load_images(source, np.array([0]), 16, 1)


def test_class_folders_and_npz_sources(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("normal", "lesion"):
        (tmp_path / "tree" / label).mkdir(parents=True)
        for k in range(3):
            write_png(tmp_path / "tree" / label / f"{k}.png", make_scan(rng, 20, label == "lesion"))
    source = read_source(tmp_path / "tree")
    assert sorted(source.labels) == ["lesion"] * 3 + ["normal"] * 3
    images = rng.integers(0, 255, (10, 28, 28), dtype=np.uint8)
    np.savez(
        tmp_path / "d.npz",
        train_images=images[:6],
        train_labels=np.zeros((6, 1)),
        val_images=images[6:8],
        val_labels=np.ones((2, 1)),
        test_images=images[8:],
        test_labels=np.ones((2, 1)),
    )
    source = read_source(tmp_path / "d.npz")
    splits = split_source(source, 0.1, 0.1, seed=0)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    pixels = load_images(source, splits["val"], 32, 3)
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.float16
    expected = to_model_input(images[6] / 255.0, 32, 3)
    assert torch.allclose(pixels[0].float(), expected, atol=1e-3)


def test_to_model_input_handles_gray_and_colour():
    gray = np.random.default_rng(0).random((40, 30), dtype=np.float32)
    rgb = np.stack([gray] * 3, axis=-1)
    three = to_model_input(gray, 16, 3)
    assert three.shape == (3, 16, 16) and torch.equal(three[0], three[2])
    one = to_model_input(rgb, 16, 1)
    assert one.shape == (1, 16, 16)
    assert torch.allclose(one[0], three[0], atol=1e-5)  # luminance of a gray RGB is the gray


def test_augmentations_keep_laterality_unless_allowed():
    image = torch.zeros(1, 32, 32)
    image[:, 8:24, 2:10] = 1.0  # a finding on the left
    augment = build_augment(
        AugmentConfig(rotation_deg=5, translate=0.02, brightness=0.0, contrast=0.0)
    )
    torch.manual_seed(0)
    for _ in range(20):
        out = augment(image)
        assert out[:, :, :16].sum() > 5 * out[:, :, 16:].sum()  # never moved to the right
        assert out.min() >= 0 and out.max() <= 1
    flips = build_augment(
        AugmentConfig(
            hflip=True, rotation_deg=0, translate=0, brightness=0, contrast=0, scale=(1.0, 1.0)
        )
    )
    torch.manual_seed(0)
    assert any(flips(image)[:, :, 16:].sum() > flips(image)[:, :, :16].sum() for _ in range(20))
    assert build_augment(AugmentConfig(enabled=False)) is None


def test_tta_views_shift_without_wrapping():
    images = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8)
    views = tta_views(images, hflip=False)
    assert len(views) == 3 and all(v.shape == images.shape for v in views)
    assert torch.equal(views[1][0, 0, 1:, 1:], images[0, 0, :-1, :-1])
    assert torch.equal(views[1][0, 0, 0, 1:], images[0, 0, 0, :-1])  # replicated edge, not wrapped
    assert len(tta_views(images, hflip=True)) == 4
