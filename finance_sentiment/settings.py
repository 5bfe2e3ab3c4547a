"""Deployment settings of the finance_sentiment service: the core's plus the monitor's knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import ServeSettings


class FinanceSettings(ServeSettings):
    """`ServeSettings` plus the monitor's store, watched folder and webhook.

    Each field reads exactly one variable, `VERTICALS_` plus its name.

    Attributes:
        finance_db: SQLite file of the monitor (`VERTICALS_FINANCE_DB`); default `monitor.db` in
            `data_dir` when that is set, else next to the artifact (never inside it).
        finance_watch_dir: Folder polled for new `.csv`/`.jsonl` files
            (`VERTICALS_FINANCE_WATCH_DIR`).
        finance_poll_s: Seconds between polls of the watched folder (`VERTICALS_FINANCE_POLL_S`).
        finance_webhook_url: Where alerts are POSTed (`VERTICALS_FINANCE_WEBHOOK_URL`); overrides
            the artifact's `alerts.webhook.url`.
        tenants_dir: One adapter artifact folder per tenant, named by the tenant, served on the
            artifact's base with the header `X-Tenant` (`VERTICALS_TENANTS_DIR`; see
            `tenants.py`); the served artifact must then be an adapter artifact.
        tenant_cache_size: Most tenant adapters loaded at once, least recently used evicted
            (`VERTICALS_TENANT_CACHE_SIZE`).
    """

    finance_db: Path | None = None
    finance_watch_dir: Path | None = None
    finance_poll_s: float = 2.0
    finance_webhook_url: str | None = None
    tenants_dir: Path | None = None
    tenant_cache_size: int = Field(32, ge=1)

    def db_path(self, artifact: Path) -> Path:
        """The monitor database for the artifact at `artifact`."""
        if self.finance_db is not None:
            return self.finance_db
        return (self.data_dir or Path(artifact).parent) / "monitor.db"
