"""Deployment settings, read from `VERTICALS_*` environment variables (pydantic-settings).

The core builds a vertical's settings once (`Vertical.settings_cls`, this class or a subclass
that adds the vertical's own knobs) and hands them to `Vertical.load`, so no runtime reads the
environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseSettings):
    """Knobs of a loaded model and its service.

    Attributes:
        api_key: When set, every data route requires the header `X-API-Key`.
        max_body_bytes: Larger request bodies get 413.
        max_batch_size: Largest batch the inference engine forms.
        max_wait_ms: How long a batch waits for more items (0: run what is waiting).
        device: `auto` (CUDA, then MPS, then CPU), `cpu`, `cuda`, `cuda:1`, ...
        keep_uploads: Keep uploaded files after they are ingested (debugging).
        data_dir: Where a service keeps the state it writes; beside the artifact when unset.
        max_concurrent_uploads: Uploads decoded at once per worker; others wait for a slot.
        upload_wait_s: How long an upload waits for a slot before it gets 429.
        docs: `off` removes `/docs`, `/redoc` and `/openapi.json`.
        log_format: `text`, or `json` for one JSON object per log line and per request.
    """

    # A field's variable is the prefix plus its name, nothing else: a vertical's own knobs carry
    # the vertical in their names (`finance_db` is VERTICALS_FINANCE_DB), so no alias is needed.
    model_config = SettingsConfigDict(env_prefix="VERTICALS_", extra="ignore")

    api_key: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_batch_size: int = 32
    max_wait_ms: float = 0.0
    device: str = "auto"
    keep_uploads: bool = False
    data_dir: Path | None = None
    max_concurrent_uploads: int = Field(4, ge=1)
    upload_wait_s: float = Field(30.0, ge=0)
    docs: bool = True
    log_format: Literal["text", "json"] = "text"


class TenantSettings(ServeSettings):
    """`ServeSettings` of a vertical that serves many tenants' adapters on one base model.

    Attributes:
        tenants_dir: One adapter artifact folder per tenant, named by the tenant, served on the
            artifact's base with the header `X-Tenant` (`VERTICALS_TENANTS_DIR`); the served
            artifact must then be an adapter artifact.
        tenant_cache_size: Most tenant adapters loaded at once, the least recently used
            evicted first (`VERTICALS_TENANT_CACHE_SIZE`).
    """

    tenants_dir: Path | None = None
    tenant_cache_size: int = Field(32, ge=1)
