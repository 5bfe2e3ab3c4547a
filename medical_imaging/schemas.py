"""The manifest table: one row per image."""

from __future__ import annotations

from shared.data import Column, TableSchema

SPLITS = ("train", "val", "test")

MANIFEST_SCHEMA = TableSchema(
    "image_manifest",
    (
        Column("path", "str"),
        Column("label", "str"),
        Column("patient_id", "str", required=False, nonempty=False),
        Column("split", "str", required=False, nonempty=False, choices=SPLITS),
    ),
    label="label",
)

PREDICT_SCHEMA = TableSchema(
    "image_inputs",
    (Column("path", "str"), Column("heatmap_path", "str", required=False, nonempty=False)),
)
