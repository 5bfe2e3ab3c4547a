"""Many customers' bots on one base: tenants' adapter bots served beside the artifact's own.

With `VERTICALS_TENANTS_DIR` set, the served artifact must be a LoRA adapter artifact (trained
with `adapter.method=lora`): its base encoder is in memory once and carries its own adapter and
those of the tenants. Each tenant is a bot adapter artifact in that folder, named by the tenant
(`tenants/acme/`, trained with `adapter.method=lora` on the same base), with its own knowledge
base, intents, dialogue acts, calibration and conversations. A request picks it with the header
`X-Tenant: acme`; one without the header goes to the served artifact's bot.

- Tenants are read on demand: a folder copied in (best renamed into place, whole) is served on
  its first request, without a restart; a replaced one is reloaded (its manifest changed); a
  removed one answers 404 and leaves memory. `rescan` drops what changed on disk at once.
- At most `VERTICALS_TENANT_CACHE_SIZE` tenants stay loaded, the least recently used evicted
  first (`shared.adapters.AdapterCache`); one evicted is reloaded from its folder when asked for
  again. A tenant's KB edits are written into its folder (its live KB versions), so they outlive
  an eviction and a restart; its conversations are kept in memory across evictions.
- Messages of different tenants share the engine's batches: one forward through the base with
  each row's adapter (peft's mixed-batch LoRA, `adapter_names`). A tenant must have been
  trained with the served artifact's `max_seq_length`, so that one tokenisation serves a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.adapters import (
    MIXED_BATCH_METHODS,
    AdapterCache,
    check_base,
    tenant_folder,
    tenants_on_disk,
)
from shared.artifacts import MANIFEST, read_manifest
from shared.errors import ArtifactError, InputError
from shared.models import embed_features, embed_texts, tokenize

from . import adapter as bot_adapter

if TYPE_CHECKING:
    from .bot import CustomerServiceBot
    from .config import CustomerServiceSettings

log = logging.getLogger(__name__)

TenantText = tuple[str | None, str]
"""What the engine batches in a service with tenants: the tenant (None: the served bot), a text."""


def no_tenants(name: str) -> InputError:
    """The 404 of a tenant asked for where the service serves none."""
    return InputError(
        f"tenant {name!r} not found: this service serves no tenants (VERTICALS_TENANTS_DIR "
        "is unset); send no X-Tenant header",
        404,
    )


def check_servable(artifact: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The adapter section of the served artifact, once it can carry tenants.

    Raises:
        ArtifactError: when it is a full model, or an adapter that peft cannot batch with others.
    """
    section = manifest.get(bot_adapter.MANIFEST_KEY)
    if not section:
        raise ArtifactError(
            f"VERTICALS_TENANTS_DIR is set, so {artifact} must be an adapter artifact "
            "(trained with adapter.method=lora), whose base model serves every tenant; "
            "it is a full model"
        )
    if section["method"] not in MIXED_BATCH_METHODS:
        raise ArtifactError(
            f"VERTICALS_TENANTS_DIR is set, but {artifact} is an {section['method']} adapter: "
            f"tenants share one base through {', '.join(MIXED_BATCH_METHODS)} adapters only; "
            "serve it alone or train it with adapter.method=lora"
        )
    return section


class TenantEmbedder:
    """A bot's way into the shared engine: its texts queued as its tenant's items."""

    def __init__(self, engine: Any, tenant: str | None) -> None:
        self.engine, self.tenant = engine, tenant

    async def submit_many(self, texts: list[str]) -> list[np.ndarray]:
        return await self.engine.submit_many([(self.tenant, t) for t in texts])

    def run(self, texts: list[str]) -> list[np.ndarray]:
        return self.engine.run([(self.tenant, t) for t in texts])


class TenantEncoder:
    """The shared sentence encoder as one tenant sees it: every forward runs its adapter.

    What `shared.models.embed_texts` needs of an encoder, for the tenant's KB edits (the
    messages go through the engine instead). The adapter is (re)loaded if it was evicted.
    """

    def __init__(self, pool: BotTenants, tenant: str) -> None:
        self.pool, self.tenant = pool, tenant

    @property
    def base(self) -> Any:
        return self.pool.encoder

    @property
    def device(self) -> Any:
        return self.base.device

    @property
    def training(self) -> bool:
        return self.base.training

    def eval(self) -> TenantEncoder:
        self.base.eval()
        return self

    def train(self, mode: bool = True) -> TenantEncoder:
        self.base.train(mode)
        return self

    def get_embedding_dimension(self) -> int:
        return self.base.get_embedding_dimension()

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        return tokenize(self.base, texts)

    def __call__(self, features: dict[str, Any]) -> dict[str, Any]:
        with self.pool.cache.lock:
            name = self.pool.adapter_of(self.tenant)
            rows = int(features["input_ids"].shape[0])
            return self.base({**features, "adapter_names": [name] * rows})

    def encode(self, texts: Sequence[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        texts = list(texts)
        parts = [
            embed_texts(self, texts[i : i + batch_size], batch_size)
            for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.get_embedding_dimension()))


class BotTenants:
    """The tenants of one bot service: looked up in `folder`, their adapters in an LRU cache on
    the encoder of `main` (the served bot, whose own adapter is pinned).

    Args:
        main: The served bot (an adapter artifact's, its encoder left unmerged).
        section: Its manifest's `adapter` section (the base model's name and hash).
        settings: The service's settings (`tenants_dir`, `tenant_cache_size`; the tenants'
            bots are built with them).
    """

    def __init__(
        self, main: CustomerServiceBot, section: dict[str, Any], settings: CustomerServiceSettings
    ) -> None:
        self.main, self.settings = main, settings
        self.folder = Path(settings.tenants_dir)
        self.base_name, self.base_hash = section["base_model"], section["base_sha256"]
        self.encoder = main.encoder
        self.model = bot_adapter.transformer_of(self.encoder).model
        self.cache: AdapterCache[CustomerServiceBot] = AdapterCache(
            self.model, settings.tenant_cache_size
        )
        self.main_adapter = next(iter(self.cache.pinned))
        self.max_seq_length = int(self.encoder.max_seq_length)
        self.sessions: dict[str, Any] = {}
        self.stamps: dict[str, int] = {}

    # -- lookup -----------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """The folder of tenant `name`; a tenant gone from disk also leaves memory.

        Raises:
            InputError: 422 for a name that is not a tenant name, 404 when no such tenant.
        """
        try:
            return tenant_folder(self.folder, name)
        except InputError as exc:
            if exc.status_code == 404:
                self.cache.remove(name)
            raise

    def bot(self, name: str) -> CustomerServiceBot:
        """Tenant `name`'s bot, loaded from its folder unless cached and unchanged.

        Raises:
            InputError: 404 (no such tenant), 422 (bad name), 409 (its adapter does not fit).
        """
        path = self.path(name)
        stamp = (path / MANIFEST).stat().st_mtime_ns
        with self.cache.lock:
            bot = self.cache.get(name)
            if bot is not None and self.stamps.get(name) == stamp:
                return bot
            try:
                bot = self._load(name, path)
            except (ArtifactError, KeyError, ValueError) as exc:  # or a config that fails
                raise InputError(f"tenant {name!r} cannot be served: {exc}", 409) from None
            self.stamps[name] = stamp
            log.info("tenant %s loaded (%d in memory)", name, len(self.cache))
            return bot

    def adapter_of(self, tenant: str | None) -> str:
        """peft's name of the adapter that embeds `tenant`'s texts, loading it if evicted."""
        if tenant is None:
            return self.main_adapter
        if tenant not in self.cache:
            self.bot(tenant)
        return self.cache.adapter_name(tenant)

    def _load(self, name: str, path: Path) -> CustomerServiceBot:
        from .bot import CustomerServiceBot

        manifest = read_manifest(path, vertical="customer_service")
        section = manifest.get(bot_adapter.MANIFEST_KEY)
        if not section:
            raise ArtifactError(
                "it is a full model, not an adapter artifact: train it with "
                "adapter.method=lora on this service's base"
            )
        check_base(self.base_hash, section["base_sha256"], section["base_model"], name)
        length = manifest["config"].get("max_seq_length")
        if length != self.max_seq_length:
            raise ArtifactError(
                f"it was trained with max_seq_length {length}, and this service's base "
                f"tokenises at {self.max_seq_length}: train it with max_seq_length="
                f"{self.max_seq_length}"
            )
        bot = CustomerServiceBot(
            path,
            self.settings,
            sessions=self.sessions.get(name),  # None at first: its own store, by its bot.json
            encoder=TenantEncoder(self, name),
            embedder=TenantEmbedder(self.main.engine, name),
        )
        self.sessions[name] = bot.sessions  # conversations outlive an eviction
        self.cache.put(name, path / bot_adapter.ADAPTER_DIR, bot)
        return bot

    # -- the engine's batches ---------------------------------------------------------------
    def encode_items(self, items: Sequence[TenantText]) -> list[np.ndarray]:
        """One normalised vector per (tenant, text), in order; tenants' rows share forwards.

        A batch naming more tenants than the cache holds runs in parts of at most `capacity`
        tenants, so that no part evicts an adapter it uses.
        """
        out: list[np.ndarray | None] = [None] * len(items)
        for part in self._parts(items):
            with self.cache.lock:  # no eviction while the part's adapters are in use
                names = {t: self.adapter_of(t) for t in {items[i][0] for i in part}}
                rows = [names[items[i][0]] for i in part]
                features = tokenize(self.encoder, [items[i][1] for i in part])
                features = {k: v.to(self.encoder.device) for k, v in features.items()}
                if set(rows) != {self.main_adapter}:  # the served bot alone: peft's plain path
                    features["adapter_names"] = rows
                vectors = embed_features(self.encoder, features).cpu().numpy()
            for i, vector in zip(part, vectors, strict=True):
                out[i] = np.ascontiguousarray(vector, dtype=np.float32)
        return out

    def _parts(self, items: Sequence[TenantText]) -> list[list[int]]:
        """Item indices in order, cut wherever one more tenant would exceed the capacity."""
        parts: list[list[int]] = [[]]
        seen: set[str] = set()
        for i, (name, _) in enumerate(items):
            if name is not None and name not in seen:
                if len(seen) == self.cache.capacity:
                    parts, seen = [*parts, []], set()
                seen.add(name)
            parts[-1].append(i)
        return [part for part in parts if part]

    # -- management -------------------------------------------------------------------------
    def rescan(self) -> dict[str, list[str]]:
        """Drops the loaded tenants whose folder is gone (`removed`) or changed (`changed`:
        reloaded on their next request); lists the tenants on disk (`available`)."""
        removed, changed = [], []
        for name, _ in self.cache.items():
            manifest = self.folder / name / MANIFEST
            if not manifest.is_file():
                removed.append(name)
                self.sessions.pop(name, None)
            elif manifest.stat().st_mtime_ns != self.stamps.get(name):
                changed.append(name)
            else:
                continue
            self.cache.remove(name)
        return {"available": tenants_on_disk(self.folder), "removed": removed, "changed": changed}

    def info(self) -> dict[str, Any]:
        """`/tenants`: on disk, loaded (least recently used first), capacity and counters."""
        cache = self.cache
        return {
            "available": tenants_on_disk(self.folder),
            "loaded": cache.keys(),
            "capacity": cache.capacity,
            "loads": cache.loads,
            "evictions": cache.evictions,
            "adapter_bytes": cache.adapter_bytes(),
            "base_model": self.base_name,
            "base_sha256": self.base_hash,
        }
