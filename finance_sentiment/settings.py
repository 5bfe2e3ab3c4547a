"""Deployment settings of the finance_sentiment service: the core's plus the monitor's knobs."""

from __future__ import annotations

from pathlib import Path

from shared.settings import TenantSettings


class FinanceSettings(TenantSettings):
    """`ServeSettings` plus the tenants (`TenantSettings`; see `tenants.py`) and the monitor's
    store, watched folder and webhook.

    Each field reads exactly one variable, `VERTICALS_` plus its name.

    Attributes:
        finance_db: SQLite file of the monitor (`VERTICALS_FINANCE_DB`); default `monitor.db` in
            `data_dir` when that is set, else next to the artifact (never inside it).
        finance_watch_dir: Folder polled for new `.csv`/`.jsonl` files
            (`VERTICALS_FINANCE_WATCH_DIR`).
        finance_poll_s: Seconds between polls of the watched folder (`VERTICALS_FINANCE_POLL_S`).
        finance_webhook_url: Where alerts are POSTed (`VERTICALS_FINANCE_WEBHOOK_URL`); overrides
            the artifact's `alerts.webhook.url`.
    """

    finance_db: Path | None = None
    finance_watch_dir: Path | None = None
    finance_poll_s: float = 2.0
    finance_webhook_url: str | None = None

    def db_path(self, artifact: Path) -> Path:
        """The monitor database for the artifact at `artifact`."""
        if self.finance_db is not None:
            return self.finance_db
        return (self.data_dir or Path(artifact).parent) / "monitor.db"
