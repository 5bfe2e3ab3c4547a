"""Many customers on one base: tenants' LoRA adapters served beside the artifact's own.

With `VERTICALS_TENANTS_DIR` set, the served artifact must be an adapter artifact: its base model
(in memory once) carries its own adapter and those of the tenants. Each tenant is one adapter
artifact folder in that directory, named by the tenant (`tenants/acme/`, trained with
`adapter.method=lora` on the same base); a `/score` request picks it with the header
`X-Tenant: acme`, and one without the header is scored by the served artifact.

- Tenants are read on demand: a folder copied in (best renamed into place, whole) is served on
  its first request, without a restart; a replaced one is reloaded (its manifest changed); a
  removed one answers 404 and leaves memory. `rescan` drops what changed on disk at once.
- At most `VERTICALS_TENANT_CACHE_SIZE` tenants' adapters stay loaded, the least recently used
  evicted first (`shared.adapters.AdapterCache`); a tenant evicted is reloaded from disk when it
  is asked for again (a few milliseconds: only its adapter and heads are read).
- Requests of different tenants share a batch: the engine's batch is one forward through the
  base with each row's adapter (peft's mixed-batch LoRA), then each tenant's own heads on its
  rows. Rows of tenants whose texts are tokenised to other lengths (`text.max_length`) run as
  separate forwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.artifacts import load_json
from shared.tenants import TenantPool as SharedTenantPool

from .config import FinanceConfig
from .lora import ADAPTER_DIR, MANIFEST_KEY, tenant_task
from .model import Scorer, build_scorer

log = logging.getLogger(__name__)

BATCH_PIECES = 64
"""Most texts or sentences in one forward pass."""
TenantText = tuple[str, str | None]
"""What the engine batches: a text and the tenant that scores it (None: the served artifact)."""


@dataclass(frozen=True)
class Tenant:
    """A loaded tenant: its scorer (own heads and labels, the shared body) and its adapter's
    name in the shared `PeftModel`."""

    name: str | None
    adapter: str
    scorer: Scorer


class TenantPool(SharedTenantPool[Tenant]):
    """The tenants of one service (`shared.tenants.TenantPool`): their adapters on the body of
    `main` (the served artifact's scorer, whose own adapter is pinned), each with its heads.

    Args:
        main: Scorer of the served adapter artifact.
        section: Its manifest's `adapter` section (the base model's name and hash).
        folder: One adapter artifact folder per tenant.
        capacity: Most tenant adapters loaded at once.
    """

    vertical = "finance_sentiment"
    adapter_dir = ADAPTER_DIR
    adapter_key = MANIFEST_KEY

    def __init__(self, main: Scorer, section: dict[str, Any], folder: Path, capacity: int) -> None:
        self.body = main.task.backbone
        super().__init__(self.body, section, folder, capacity)
        self.main = Tenant(None, self.main_adapter, main)

    def resolve(self, name: str | None) -> Tenant:
        """Tenant `name` loaded (from its folder unless cached and unchanged), or the served
        artifact for None.

        Raises:
            InputError: 404 (no such tenant), 422 (bad name), 409 (its adapter does not fit).
        """
        return self.main if name is None else self.get(name)

    def load(self, name: str, path: Path, manifest: dict[str, Any]) -> Tenant:
        cfg = FinanceConfig.model_validate(manifest["config"])
        meta = load_json(path / "finance.json")
        task = tenant_task(self.body, path, meta).to(self.main.scorer.device)
        scorer = build_scorer(
            self.main.scorer.tokenizer,
            task,
            meta,
            cfg.text,
            self.main.scorer.device,
            cfg.model,
            encoder=self._encoder(),
        )
        return Tenant(name, self.cache.adapter_name(name), scorer)

    def _encoder(self):
        """The zero-shot topic encoder already loaded, shared by every tenant that uses one."""
        loaded = [t.scorer.zero_shot for t in (self.main, *(t for _, t in self.cache.items()))]
        return next((z.encoder for z in loaded if z is not None), None)

    def score(self, items: Sequence[TenantText]) -> list[dict[str, Any]]:
        """One result per (text, tenant), in order; different tenants' rows share forwards.

        A batch naming more tenants than the cache holds runs in parts of at most `capacity`
        tenants, so that no part evicts an adapter it uses.
        """
        results: list[dict[str, Any] | None] = [None] * len(items)
        for part in self.parts([name for _, name in items]):
            with self.cache.lock:  # no eviction while the part's adapters are in use
                tenants = {name: self.resolve(name) for name in {items[i][1] for i in part}}
                scored = score_mixed(
                    self.main.scorer, [(tenants[items[i][1]], items[i][0]) for i in part]
                )
            for i, result in zip(part, scored, strict=True):
                results[i] = result
        return results


@dataclass
class _Share:
    """One tenant's part of a mixed batch: its entries, their pieces and the pieces' scores."""

    tenant: Tenant
    positions: list[int]
    texts: list[str]
    pieces: list[str] = field(default_factory=list)
    owner: np.ndarray | None = None
    probs: np.ndarray | None = None
    topic_probs: np.ndarray | None = None

    def store(self, index: list[int], probs: np.ndarray, topic_probs: np.ndarray | None) -> None:
        """Writes the scores of the pieces at `index`."""
        if self.probs is None:
            self.probs = np.zeros((len(self.pieces), probs.shape[1]), np.float32)
        self.probs[index] = probs
        if topic_probs is not None:
            if self.topic_probs is None:
                self.topic_probs = np.zeros((len(self.pieces), topic_probs.shape[1]), np.float32)
            self.topic_probs[index] = topic_probs


@torch.inference_mode()
def score_mixed(base: Scorer, entries: Sequence[tuple[Tenant, str]]) -> list[dict[str, Any]]:
    """Scores texts of several tenants in shared forwards through the body of `base`.

    Each tenant's texts are split into pieces by its own text config; pieces of one
    `max_length` run together (at most `BATCH_PIECES` at a time), each row through its tenant's
    adapter (`adapter_names`), and each tenant's heads score its own rows.
    """
    shares: dict[str | None, _Share] = {}
    for i, (tenant, text) in enumerate(entries):
        share = shares.setdefault(tenant.name, _Share(tenant, [], []))
        share.positions.append(i)
        share.texts.append(text)
    rows: dict[int, list[tuple[_Share, int]]] = {}
    for share in shares.values():
        share.pieces, share.owner = share.tenant.scorer.pieces(share.texts)
        length = share.tenant.scorer.text_cfg.max_length
        rows.setdefault(length, []).extend((share, j) for j in range(len(share.pieces)))
    for length, group in rows.items():
        for start in range(0, len(group), BATCH_PIECES):
            _forward(base, group[start : start + BATCH_PIECES], length)
    results: list[dict[str, Any] | None] = [None] * len(entries)
    for share in shares.values():
        scorer = share.tenant.scorer
        scored = scorer.results(share.pieces, share.owner, share.probs, share.topic_probs)
        for i, result in zip(share.positions, scored, strict=True):
            results[i] = result
    return results


def _forward(base: Scorer, rows: list[tuple[_Share, int]], length: int) -> None:
    """One forward of `rows` (a tenant's share, a piece index) through the shared body, each
    row through its tenant's adapter; each tenant's heads score its rows."""
    enc = base.tokenizer(
        [share.pieces[j] for share, j in rows],
        padding=True,
        truncation=True,
        max_length=length,
        return_tensors="pt",
    ).to(base.device)
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    names = [share.tenant.adapter for share, _ in rows]
    if set(names) == {base.task.backbone.active_adapter}:
        pooled = base.task.pool(batch)  # the served adapter alone: peft's plain path
    else:
        pooled = base.task.pool(batch, adapter_names=names)
    for share in {id(s): s for s, _ in rows}.values():
        mine = [k for k, (s, _) in enumerate(rows) if s is share]
        scorer = share.tenant.scorer
        out = scorer.task.heads(pooled[mine])
        share.store([rows[k][1] for k in mine], *scorer.probabilities(out))
