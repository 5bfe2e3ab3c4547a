"""Deployment settings of the finance_sentiment service: the core's plus the monitor's knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import ServeSettings


class FinanceSettings(ServeSettings):
    """`ServeSettings` plus the monitor's store, watched folder and webhook.

    Each knob reads only its `VERTICALS_FINANCE_*` variable (an `AliasChoices(..., "db")` would
    also read a bare `DB`); the field name works as a keyword (`populate_by_name`).

    Attributes:
        db: SQLite file of the monitor (`VERTICALS_FINANCE_DB`); default `monitor.db` in
            `data_dir` when that is set, else next to the artifact (never inside it).
        watch_dir: Folder polled for new `.csv`/`.jsonl` files (`VERTICALS_FINANCE_WATCH_DIR`).
        poll_s: Seconds between polls of `watch_dir` (`VERTICALS_FINANCE_POLL_S`).
        webhook_url: Where alerts are POSTed (`VERTICALS_FINANCE_WEBHOOK_URL`); overrides the
            artifact's `alerts.webhook.url`.
    """

    db: Path | None = Field(None, validation_alias="VERTICALS_FINANCE_DB")
    watch_dir: Path | None = Field(None, validation_alias="VERTICALS_FINANCE_WATCH_DIR")
    poll_s: float = Field(2.0, validation_alias="VERTICALS_FINANCE_POLL_S")
    webhook_url: str | None = Field(None, validation_alias="VERTICALS_FINANCE_WEBHOOK_URL")

    def db_path(self, artifact: Path) -> Path:
        """The monitor database for the artifact at `artifact`."""
        if self.db is not None:
            return self.db
        return (self.data_dir or Path(artifact).parent) / "monitor.db"
