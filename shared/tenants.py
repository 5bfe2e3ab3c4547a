"""Many tenants on one base model in a service: the tenants folder, their LRU, their reloads.

A service with `VERTICALS_TENANTS_DIR` serves, beside its own adapter artifact, the adapter
artifacts in that folder, one per tenant, each named by its tenant (`tenants/acme/`) and picked
per request by the header `X-Tenant`. :class:`TenantPool` is what every such vertical shares:

- a tenant is read on demand: a folder copied in (best renamed into place, whole) is served on
  its first request, without a restart; a replaced one (its manifest changed) is reloaded; a
  removed one is a 404 naming it and leaves memory; :meth:`TenantPool.rescan` drops what
  changed on disk at once;
- at most `capacity` tenants stay loaded, their adapters on the one base model in an
  `AdapterCache` (least recently used evicted first); an evicted tenant is reloaded from its
  folder when it is asked for again;
- a tenant's adapter must belong to the served base (the weights hash in both manifests);
- :meth:`TenantPool.parts` cuts a batch of several tenants' items where one more tenant would
  exceed the capacity, so that no part evicts an adapter it uses.

A vertical subclasses it with :meth:`TenantPool.load` (its own tenant object: heads, labels, a
knowledge base...) and serves each batch through peft's mixed-batch inference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field

from shared.adapters import AdapterCache, check_base
from shared.artifacts import MANIFEST, read_manifest
from shared.errors import ArtifactError, InputError

log = logging.getLogger(__name__)

T = TypeVar("T")
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A tenant's name: its folder's name in the tenants folder and the `X-Tenant` header's value."""


def tenant_folder(folder: str | Path, name: str) -> Path:
    """The adapter artifact folder of tenant `name` in the tenants folder `folder`.

    Raises:
        InputError: 422 for a name that is not a tenant name, 404 when there is no such tenant.
    """
    if not TENANT_NAME.fullmatch(name):
        raise InputError(
            f"tenant {name!r} is not a valid tenant name (letters, digits, '_' and '-', "
            "at most 64, starting with a letter or digit)",
            422,
        )
    path = Path(folder) / name
    if not (path / MANIFEST).is_file():
        raise InputError(f"tenant {name!r} not found: no adapter artifact named {name}", 404)
    return path


def tenants_on_disk(folder: str | Path) -> list[str]:
    """The tenants in the tenants folder `folder` (folders holding a manifest), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if TENANT_NAME.fullmatch(p.name) and (p / MANIFEST).is_file()
    )


def no_tenants(name: str) -> InputError:
    """The 404 of a tenant asked for where the service serves none."""
    return InputError(
        f"tenant {name!r} not found: this service serves no tenants (VERTICALS_TENANTS_DIR "
        "is unset); send no X-Tenant header",
        404,
    )


def served_pool(pool: TenantPool | None) -> TenantPool:
    """`pool`, the tenants of a service; a 404 where the service serves none.

    Raises:
        InputError: 404 when `pool` is None (`VERTICALS_TENANTS_DIR` unset).
    """
    if pool is None:
        raise InputError(
            "this service serves no tenants: set VERTICALS_TENANTS_DIR to a folder of adapter "
            "artifacts, one per tenant",
            404,
        )
    return pool


class TenantsResponse(BaseModel):
    """`GET /tenants` of a service with `VERTICALS_TENANTS_DIR`: on disk and loaded."""

    available: list[str] = Field(description="tenant folders in the tenants directory")
    loaded: list[str] = Field(description="tenants whose adapter is in memory, least recent first")
    capacity: int = Field(description="most tenant adapters in memory at once")
    loads: int = Field(description="adapters loaded since the start (first use, after eviction)")
    evictions: int = Field(description="adapters evicted since the start")
    adapter_bytes: int = Field(description="bytes of the adapters in memory, the served one too")
    base_model: str
    base_sha256: str = Field(description="sha256 of the base weights every tenant must match")


class RescanResponse(BaseModel):
    """`POST /tenants/rescan`: what a rescan of the tenants directory found."""

    available: list[str]
    removed: list[str] = Field(description="loaded tenants whose folder is gone: unloaded")
    changed: list[str] = Field(description="loaded tenants replaced on disk: reloaded when used")


class TenantPool(Generic[T]):
    """The tenants of one service, loaded from `folder` onto the peft model `model`.

    Args:
        model: The `PeftModel` of the served adapter artifact (its adapter is pinned).
        section: The served artifact's manifest `adapter` section (base name and hash).
        folder: The tenants folder.
        capacity: Most tenants loaded at once.
    """

    vertical: ClassVar[str]
    """The vertical whose artifacts the tenants are (their manifests must say so)."""
    adapter_dir: ClassVar[str] = "adapter"
    """The adapter's folder inside a tenant's artifact."""
    adapter_key: ClassVar[str] = "adapter"
    """The manifest section of an adapter artifact."""

    def __init__(self, model: Any, section: dict[str, Any], folder: Path, capacity: int) -> None:
        self.folder = Path(folder)
        self.base_name, self.base_hash = section["base_model"], section["base_sha256"]
        self.cache: AdapterCache[T] = AdapterCache(model, capacity)
        self.main_adapter = next(iter(self.cache.pinned))
        self.stamps: dict[str, int] = {}

    def load(self, name: str, path: Path, manifest: dict[str, Any]) -> T:
        """Tenant `name`'s object, from its folder `path` (its adapter is loaded afterwards).

        Raises:
            ArtifactError, KeyError, ValueError: the tenant cannot be served (a 409).
        """
        raise NotImplementedError

    def forget(self, name: str) -> None:
        """Called when tenant `name`'s folder is gone: drop what outlives an eviction."""

    def path(self, name: str) -> Path:
        """The folder of tenant `name`; a tenant gone from disk also leaves memory.

        Raises:
            InputError: 422 for a name that is not a tenant name, 404 when no such tenant.
        """
        try:
            return tenant_folder(self.folder, name)
        except InputError as exc:
            if exc.status_code == 404 and self.cache.remove(name):
                self.forget(name)
            raise

    def get(self, name: str) -> T:
        """Tenant `name`, loaded from its folder unless cached and unchanged.

        Raises:
            InputError: 404 (no such tenant), 422 (bad name), 409 (it does not fit this base).
        """
        path = self.path(name)
        stamp = (path / MANIFEST).stat().st_mtime_ns
        with self.cache.lock:
            value = self.cache.get(name)
            if value is not None and self.stamps.get(name) == stamp:
                return value
            try:
                manifest = read_manifest(path, vertical=self.vertical)
                section = manifest.get(self.adapter_key)
                if not section:
                    raise ArtifactError(
                        "it is a full model, not an adapter artifact: train it with "
                        "adapter.method=lora on this service's base"
                    )
                check_base(self.base_hash, section["base_sha256"], section["base_model"], name)
                value = self.load(name, path, manifest)
                self.cache.put(name, path / self.adapter_dir, value)
            except (ArtifactError, KeyError, ValueError) as exc:  # or a config that fails
                raise InputError(f"tenant {name!r} cannot be served: {exc}", 409) from None
            self.stamps[name] = stamp
            log.info("tenant %s loaded (%d in memory)", name, len(self.cache))
            return value

    def adapter_of(self, name: str | None) -> str:
        """peft's name of the adapter of tenant `name` (None: the served artifact's), loading
        the tenant if it was evicted."""
        if name is None:
            return self.main_adapter
        if name not in self.cache:
            self.get(name)
        return self.cache.adapter_name(name)

    def parts(self, names: Sequence[str | None]) -> list[list[int]]:
        """Indices of `names` (each item's tenant, None for the served artifact) in order, cut
        wherever one more tenant would exceed the capacity."""
        parts: list[list[int]] = [[]]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name is not None and name not in seen:
                if len(seen) == self.cache.capacity:
                    parts, seen = [*parts, []], set()
                seen.add(name)
            parts[-1].append(i)
        return [part for part in parts if part]

    def rescan(self) -> dict[str, list[str]]:
        """Drops the loaded tenants whose folder is gone (`removed`) or changed (`changed`:
        reloaded on their next request); lists the tenants on disk (`available`)."""
        removed, changed = [], []
        for name, _ in self.cache.items():
            manifest = self.folder / name / MANIFEST
            if not manifest.is_file():
                removed.append(name)
                self.forget(name)
            elif manifest.stat().st_mtime_ns != self.stamps.get(name):
                changed.append(name)
            else:
                continue
            self.cache.remove(name)
        return {"available": self.available(), "removed": removed, "changed": changed}

    def available(self) -> list[str]:
        """The tenants on disk (folders holding a manifest), by name."""
        return tenants_on_disk(self.folder)

    def info(self) -> dict[str, Any]:
        """`/tenants`: on disk, loaded (least recently used first), capacity and counters."""
        cache = self.cache
        return {
            "available": self.available(),
            "loaded": cache.keys(),
            "capacity": cache.capacity,
            "loads": cache.loads,
            "evictions": cache.evictions,
            "adapter_bytes": cache.adapter_bytes(),
            "base_model": self.base_name,
            "base_sha256": self.base_hash,
        }
