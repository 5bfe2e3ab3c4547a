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

from shared.adapters import MIXED_BATCH_METHODS
from shared.errors import ArtifactError
from shared.models import embed_features, embed_texts, tokenize
from shared.tenants import TenantPool

from . import adapter as bot_adapter

if TYPE_CHECKING:
    from .bot import CustomerServiceBot
    from .config import CustomerServiceSettings

log = logging.getLogger(__name__)

TenantText = tuple[str | None, str]
"""What the engine batches in a service with tenants: the tenant (None: the served bot), a text."""


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


class BotTenants(TenantPool["CustomerServiceBot"]):
    """The tenants of one bot service (`shared.tenants.TenantPool`): their adapters on the
    encoder of `main` (the served bot, whose own adapter is pinned), each a whole bot.

    Args:
        main: The served bot (an adapter artifact's, its encoder left unmerged).
        section: Its manifest's `adapter` section (the base model's name and hash).
        settings: The service's settings (`tenants_dir`, `tenant_cache_size`; the tenants'
            bots are built with them).
    """

    vertical = "customer_service"
    adapter_dir = bot_adapter.ADAPTER_DIR
    adapter_key = bot_adapter.MANIFEST_KEY

    def __init__(
        self, main: CustomerServiceBot, section: dict[str, Any], settings: CustomerServiceSettings
    ) -> None:
        self.main, self.settings = main, settings
        self.encoder = main.encoder
        self.model = bot_adapter.transformer_of(self.encoder).model
        super().__init__(
            self.model, section, Path(settings.tenants_dir), settings.tenant_cache_size
        )
        self.max_seq_length = int(self.encoder.max_seq_length)
        self.sessions: dict[str, Any] = {}

    def bot(self, name: str) -> CustomerServiceBot:
        """Tenant `name`'s bot, loaded from its folder unless cached and unchanged.

        Raises:
            InputError: 404 (no such tenant), 422 (bad name), 409 (its adapter does not fit).
        """
        return self.get(name)

    def load(self, name: str, path: Path, manifest: dict[str, Any]) -> CustomerServiceBot:
        from .bot import CustomerServiceBot

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
        return bot

    def forget(self, name: str) -> None:
        self.sessions.pop(name, None)

    # -- the engine's batches ---------------------------------------------------------------
    def encode_items(self, items: Sequence[TenantText]) -> list[np.ndarray]:
        """One normalised vector per (tenant, text), in order; tenants' rows share forwards.

        A batch naming more tenants than the cache holds runs in parts of at most `capacity`
        tenants, so that no part evicts an adapter it uses.
        """
        out: list[np.ndarray | None] = [None] * len(items)
        for part in self.parts([name for name, _ in items]):
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
