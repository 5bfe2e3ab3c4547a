"""Training configuration of the imaging classifier (YAML -> this pydantic model)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from medical_imaging.schemas import MANIFEST_SCHEMA
from shared.adapters import AdapterConfig, lora_recipe
from shared.config import StrictModel, TrainerConfig
from shared.data_import import ColumnMap, LabelMap, check_column_map
from shared.settings import TenantSettings


class AugmentConfig(StrictModel):
    """Augmentations that keep a finding's meaning: small geometry and intensity changes only.

    Horizontal flips are off by default because laterality matters in many studies (a left-sided
    finding is not a right-sided one); turn them on for images where it does not (dermoscopy).
    """

    enabled: bool = True
    rotation_deg: float = Field(10.0, ge=0, le=45)
    translate: float = Field(0.05, ge=0, le=0.3)
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = Field(0.1, ge=0, le=1)
    contrast: float = Field(0.1, ge=0, le=1)
    hflip: bool = False


class CalibrationConfig(StrictModel):
    """How the operating point is chosen on validation data."""

    temperature: bool = True
    """Fit a softmax temperature on validation; it is kept only when it lowers the validation NLL
    under 5-fold cross-validation (else T = 1), and the decision goes into calibration.json."""
    threshold_method: Literal["sensitivity", "youden"] = "sensitivity"
    target_sensitivity: float = Field(0.95, gt=0, le=1)
    low_confidence_margin: float = Field(0.1, ge=0, le=0.5)


class ImagingTrainerConfig(TrainerConfig):
    """The shared loop's settings with imaging defaults.

    One epoch with the backbone frozen (the new head settles first), then the backbone at 2e-4
    under the head's 1e-3 on a cosine schedule; training stops after 3 epochs without a better
    validation AUC (the evaluator's primary metric).
    """

    epochs: int = 6
    lr: float = 1e-3
    backbone_lr: float | None = 2e-4
    weight_decay: float = 1e-4
    freeze_backbone_epochs: int = 1
    schedule: Literal["linear", "cosine", "constant"] = "cosine"
    early_stopping_patience: int | None = 3


class MedicalImagingConfig(StrictModel):
    """Everything `verticals train medical_imaging` needs.

    Attributes:
        model: The timm backbone: packaged `efficientnet_lite0`, any timm name (online), or
            `random:<timm name>`.
        recipe: `frozen` (a linear probe on the pretrained backbone), `finetune`, or `auto`:
            both scored by validation AUC, or by `recipe_folds`-fold CV on the training images
            when validation is small (see `medical_imaging.recipes`); the choice is recorded.
            `lora` is `finetune` through a LoRA adapter (`adapter`, default r=8).
        image_size: Side of the square model input; images are resized to it. `auto`: the
            median short side of the images rounded up to 32, within [64, 224].
        in_chans: 1 folds the pretrained RGB stem for grayscale input; 3 repeats gray to RGB.
            `auto`: 1 when the images are gray, else 3.
        positive_label: Class the threshold and sensitivity are for (binary tasks only).
        class_names: Names of integer labels (a MedMNIST npz), in label order.
        columns: Manifest column -> your column (`columns.label=finding`).
        label_map: Your label -> a class name, for every kind of source (`label_map.0=normal`).
        class_balance: Weighted cross-entropy, a weighted sampler, or nothing.
        tta: Average predictions over small shifts (and flips when `augment.hflip` allows them).
        val_fraction, test_fraction: Held-out shares of the images without a split of their
            own; fixed `val` (or `test`) rows in a `split` column turn that drawn split off.
        max_images: Optional cap on training images (quick experiments; val/test untouched).
        adapter: Fine-tune through a LoRA (or IA3) adapter instead of the whole backbone
            (`{method: lora, r: 8}`; see `medical_imaging.lora`): the artifact then holds the
            adapter, the head and the base model's hash, not the backbone. It is the
            `finetune` recipe through the adapter: `recipe` must be `finetune` or `auto`.
    """

    model: str = "efficientnet_lite0"
    recipe: Literal["auto", "frozen", "finetune"] = "auto"
    recipe_folds: int = Field(5, ge=2)
    image_size: Annotated[int, Field(ge=16, le=1024)] | Literal["auto"] = "auto"
    in_chans: Literal["auto", 1, 3] = "auto"
    drop_rate: float = Field(0.2, ge=0, lt=1)
    positive_label: str | None = None
    """The finding of a binary task: the class the threshold, sensitivity and specificity are
    for (e.g. `malignant`). Needed unless exactly one of the two labels is a "normal" name
    (`normal`, `negative`, `healthy`, `benign`, ...); digit labels (`0`/`1`) are never guessed.
    Not allowed for multi-class tasks, which are decided by argmax."""
    class_names: list[str] | None = Field(None, min_length=2)
    """Names of integer labels (a MedMNIST npz holds 0, 1, ...), in label order: label i is
    called `class_names[i]` everywhere (label map, metrics, predictions), e.g.
    `[normal, pneumonia]`. Must give one name per class."""
    columns: ColumnMap = Field(default_factory=dict)
    """Manifest column -> your column, e.g. {path: file, label: finding, patient_id: subject,
    split: fold} (empty: the manifest uses `path`, `label`, `patient_id`, `split`)."""
    label_map: LabelMap = Field(default_factory=dict)
    """Your label -> a class name, e.g. {"0": normal, "1": pneumonia}, matched as text without
    case. It applies to every source (manifest, class folders, npz); the classes are ordered as
    its names are listed, then any label it leaves alone. `class_names` is the list form for
    integer labels 0..K-1; give one of the two, not both."""
    class_balance: Literal["weighted_loss", "sampler", "none"] = "weighted_loss"
    tta: bool = False
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    """Share of the images without a `split` drawn for validation (none when val rows are
    fixed; an npz or manifest with train and test only draws it from its training images)."""
    test_fraction: float = Field(0.15, ge=0, lt=0.5)
    """Share of the images without a `split` drawn for test (none when test rows are fixed)."""
    max_images: int | None = Field(None, ge=4)
    augment: AugmentConfig = AugmentConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    trainer: ImagingTrainerConfig = ImagingTrainerConfig()
    adapter: AdapterConfig | None = None
    """Fine-tune through a peft adapter ({method: lora, r: 8, alpha: 16, dropout: 0.1,
    target_modules: null}: the ungrouped convolutions and Linear layers, with the norm layers
    trained whole inside the adapter), or None: the whole backbone."""

    @model_validator(mode="before")
    @classmethod
    def _recipe_lora(cls, data: Any) -> Any:
        return lora_recipe(data)  # recipe=lora: finetune through a LoRA adapter

    @field_validator("positive_label", mode="before")
    @classmethod
    def _label_as_text(cls, value: Any) -> Any:
        """`positive_label=1` on the command line parses as the integer 1: it means label "1"."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("class_names", mode="before")
    @classmethod
    def _names_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value
            ]
        return value

    @field_validator("columns")
    @classmethod
    def _columns_are_manifest_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        return check_column_map(columns, [MANIFEST_SCHEMA])

    @model_validator(mode="after")
    def _adapter_trains_by_finetune(self) -> MedicalImagingConfig:
        if self.adapter is not None and self.recipe == "frozen":
            raise ValueError(
                "adapter (LoRA) fine-tunes the backbone, which recipe frozen does not: set "
                "recipe=finetune (or auto) with an adapter, or drop the adapter"
            )
        if self.adapter is not None and self.adapter.target_modules == "all-linear":
            raise ValueError(
                "adapter.target_modules=all-linear adapts Linear layers only, and a timm CNN "
                "has almost none: leave it null (the convolutions and Linear layers) or name "
                "the layers"
            )
        return self

    @model_validator(mode="after")
    def _one_way_to_name_classes(self) -> MedicalImagingConfig:
        if self.class_names and self.label_map:
            raise ValueError(
                "class_names and label_map both name the classes; give one of them "
                f"(class_names={self.class_names} says the same as label_map="
                f"{ {str(i): n for i, n in enumerate(self.class_names)} })"
            )
        return self


class MedicalImagingSettings(TenantSettings):
    """`ServeSettings` plus the tenants (`TenantSettings`): with `VERTICALS_TENANTS_DIR`, the
    served adapter artifact's base also serves each tenant's adapter artifact in that folder,
    picked per request by `X-Tenant` (see `medical_imaging.tenants`)."""
