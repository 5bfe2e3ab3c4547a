"""The runtime: recommendations with reasons, similar items, and online items and events.

Reads the artifact; live changes (added items, logged events) go to a state folder, by default
`<artifact>/live`, or `<settings.data_dir>/recommender` when that is set (`VERTICALS_DATA_DIR`),
and are read back on the next start. Every mutation is validated whole before anything changes.
The index and the catalogue of added items are written together, as one folder swapped into place
(`live/catalogue/`), so a restart never reads an index and a catalogue from different writes.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.artifacts import atomic_folder, load_json, load_weights, read_manifest, recover_folder
from shared.devices import resolve_device
from shared.encoder_int8 import is_int8_folder
from shared.encoder_int8 import load_encoder as load_int8_encoder
from shared.engine import InferenceEngine
from shared.errors import DataError, InputError
from shared.inputs import TIMESTAMP_RULE, parse_timestamps
from shared.models import embed_texts
from shared.settings import ServeSettings

from .data import event_weights, validate_items
from .factors import ItemFactors
from .index import ItemIndex
from .pipeline import add_sources, rerank
from .ranker import Ranker, item_similarity
from .rules import allowed, diversify, fresh_slot
from .schemas import RecommenderConfig
from .state import VERBS, Catalogue, WriterLock, build_state, load_interactions
from .towers import UserTower, pool_users

log = logging.getLogger(__name__)
MAX_K = 100
CATALOGUE = "catalogue"  # the live index and catalogue, written together
SIMILAR_REASON_MIN = 0.3


@dataclass
class RecRequest:
    """One recommendation request: a user, or an ad-hoc `history` (oldest first), and the top-k.

    `include`/`exclude` filter categories on top of the configured rules.
    """

    user_id: str | None = None
    history: list[dict] = field(default_factory=list)
    k: int = 10
    include: list[str] | None = None
    exclude: list[str] | None = None


class RecommenderRuntime:
    """A loaded recommender artifact (see module doc)."""

    def __init__(self, artifact_dir: Path, settings: ServeSettings) -> None:
        from .training import load_encoder

        artifact_dir = Path(artifact_dir)
        self.manifest = read_manifest(artifact_dir, vertical="recommender")
        self.cfg = RecommenderConfig.model_validate(self.manifest["config"])
        self.device = str(resolve_device(settings.device))
        encoder_dir = artifact_dir / "encoder"
        self.precision = "int8" if is_int8_folder(encoder_dir) else "fp32"
        if self.precision == "int8":  # `verticals compress --method int8`: CPU only
            self.device = "cpu"
            self.encoder = load_int8_encoder(encoder_dir)
            self.encoder.max_seq_length = self.cfg.max_seq_length
        else:
            self.encoder = load_encoder(str(encoder_dir), self.cfg.max_seq_length, self.device)
        self.tower = UserTower(int(self.manifest["dim"]), self.cfg.max_history)
        self.tower.load_state_dict(load_weights(artifact_dir / "user_tower.safetensors"))
        self.tower.to(self.device).eval()
        self.ranker = Ranker.from_json(load_json(artifact_dir / "ranker.json"))
        self.live = state_dir(artifact_dir, settings.data_dir)
        self.live.mkdir(parents=True, exist_ok=True)
        live = recover_folder(self.live / CATALOGUE)  # a crash mid-swap leaves it aside
        items = live if live.is_dir() else artifact_dir
        self.index = ItemIndex.load(items / "index")
        self.catalogue = Catalogue.load(items / "items.jsonl")
        events = load_interactions(artifact_dir / "interactions.jsonl")
        if (self.live / "events.jsonl").is_file():
            events = pd.concat(
                [events, load_interactions(self.live / "events.jsonl")], ignore_index=True
            )
        self.history, self.stats = build_state(
            events, self.index.row_of, self.catalogue, self.cfg.trending_days
        )
        self.lock = threading.RLock()
        self.writer = WriterLock(self.live)
        self.new_contacts = 0  # first contacts logged since the co-occurrence was computed
        self.engine = InferenceEngine.from_settings(
            self._batch, settings, warmup_items=[RecRequest(k=1)]
        )

    # ---- recommendations -------------------------------------------------------------------

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """CLI rows `{user_id, k?}` (or `{history: [...]}`) -> recommendations with reasons."""
        requests = [
            RecRequest(r.get("user_id"), r.get("history") or [], int(r.get("k") or 10))
            for r in rows
        ]
        return self.engine.run([self.validate(r) for r in requests])

    async def recommend_async(self, request: RecRequest) -> dict[str, Any]:
        """One request through the batching engine: a user's (or an ad-hoc history's) top-k."""
        return await self.engine.submit(self.validate(request))

    def validate(self, request: RecRequest) -> RecRequest:
        """Checks `k` and the history's items (unknown ones are a 422 naming them)."""
        if not 1 <= request.k <= MAX_K:
            raise InputError(f"k must be between 1 and {MAX_K}, got {request.k}")
        unknown = sorted(
            {h["item_id"] for h in request.history if h["item_id"] not in self.index.row_of}
        )
        if unknown:
            raise InputError(
                f"unknown item_id(s) in history: {unknown[:10]}; add them with POST /items first"
            )
        user = None if request.user_id is None else str(request.user_id)
        return replace(request, user_id=user)

    def _history_of(self, req: RecRequest) -> tuple[list[int], list[float], list[str]]:
        """Rows, weights and events of a request's history, most recent first."""
        if req.history:
            weights = event_weights(
                pd.DataFrame(
                    [
                        {"event": h.get("event", "click"), "value": h.get("value")}
                        for h in req.history
                    ]
                ),
                self.cfg.event_weights,
            )
            rows = [self.index.row_of[h["item_id"]] for h in req.history][::-1]
            events = [h.get("event", "click") for h in req.history][::-1]
            first = dict.fromkeys(rows)  # one entry per item, most recent contact
            keep = [rows.index(r) for r in first]
            return (
                [rows[i] for i in keep],
                [float(weights[::-1][i]) for i in keep],
                [events[i] for i in keep],
            )
        # the whole history, as offline: the user tower reads the latest `max_history` items,
        # the co-occurrence features and candidate sources all of them
        entries = self.history.recent(req.user_id) if req.user_id else []
        return [e.row for e in entries], [e.weight for e in entries], [e.event for e in entries]

    def _batch(self, requests: list[RecRequest]) -> list[dict[str, Any]]:
        with self.lock:
            hists = [self._history_of(r) for r in requests]
            warm = [i for i, h in enumerate(hists) if h[0]]
            vecs = (
                pool_users(
                    self.tower,
                    self.index.emb,
                    [
                        (
                            np.asarray(hists[i][0][: self.cfg.max_history]),
                            np.asarray(hists[i][1][: self.cfg.max_history]),
                        )
                        for i in warm
                    ],
                    self.cfg.max_history,
                )
                if warm
                else None
            )
            out = []
            for i, req in enumerate(requests):
                if i in warm:
                    out.append(self._personal(req, hists[i], vecs[warm.index(i)]))
                else:
                    out.append(self._popular(req))
            return out

    def _personal(
        self, req: RecRequest, hist: tuple[list[int], list[float], list[str]], vec: np.ndarray
    ) -> dict:
        rows_h, _, events_h = hist
        seen = set(rows_h) | (
            self.history.seen(req.user_id) if req.user_id and not req.history else set()
        )
        k = req.k
        fetch = min(len(self.index), self.cfg.candidates + len(seen) + k)
        scores, rows = self.index.search(vec[None, :], fetch)
        keep = allowed(rows[0], self.stats.category, seen, self.cfg.rules, req.include, req.exclude)
        rows, scores = (
            rows[0][keep][: max(self.cfg.candidates, k)],
            scores[0][keep][: max(self.cfg.candidates, k)],
        )
        if not len(rows):
            return self._popular(req, seen)
        hist_arr = np.asarray(rows_h, dtype=np.int64)
        if self.ranker.kind != "none" and self.cfg.extra_candidates:
            more, more_scores = add_sources(
                rows[None],
                vec[None],
                self.index.emb,
                [hist_arr],
                self.stats,
                self.cfg.extra_candidates,
                blocked=[seen],
            )
            ok = (more[0] >= 0) & allowed(
                more[0], self.stats.category, seen, self.cfg.rules, req.include, req.exclude
            )
            rows, scores = more[0][ok], more_scores[0][ok]
        ranked, ranked_scores = rerank(
            self.ranker, rows[None], scores[None], [hist_arr], self.index.emb, self.stats
        )
        picked = diversify(
            ranked[0], ranked_scores[0], self.stats.category, self.index.emb, k, self.cfg.rules
        )
        picked, fresh = fresh_slot(picked, rows, self.stats.popularity, k, self.cfg.rules)
        score_of = dict(zip(ranked[0].tolist(), ranked_scores[0].tolist(), strict=True))
        items = [
            self._item(r, score_of.get(r, 0.0), self._reason(r, hist_arr, events_h, r == fresh))
            for r in picked
        ]
        return {"user_id": req.user_id, "cold_start": False, "items": items}

    def _popular(self, req: RecRequest, seen: set[int] | None = None) -> dict:
        """Cold start: trending items first, then all-time popular ones."""
        seen = seen if seen is not None else set()
        order = self.stats.popular_order()
        keep = allowed(order, self.stats.category, seen, self.cfg.rules, req.include, req.exclude)
        order = order[keep][: max(self.cfg.candidates, req.k)]
        picked = diversify(
            order,
            -np.arange(len(order), dtype=np.float64),
            self.stats.category,
            self.index.emb,
            req.k,
            self.cfg.rules,
        )
        items = []
        for r in picked:
            cat = self.stats.category[r] or "the catalogue"
            reason = f"trending in {cat}" if self.stats.trending[r] > 0 else f"popular in {cat}"
            items.append(self._item(r, float(self.stats.popularity[r]), reason))
        return {"user_id": req.user_id, "cold_start": True, "items": items}

    def _reason(self, row: int, hist: np.ndarray, events: list[str], fresh: bool) -> str:
        sims = self.index.emb[hist] @ self.index.emb[row]
        j = int(np.argmax(sims))
        anchor = (
            f"'{self.catalogue.records[hist[j]]['title']}' you {VERBS.get(events[j], 'viewed')}"
        )
        cat = self.stats.category[row]
        if fresh:
            return f"new in {cat or 'the catalogue'}, close to {anchor}"
        if sims[j] >= SIMILAR_REASON_MIN:
            return f"similar to {anchor}"
        if self.stats.similarity is not None and row < self.stats.similarity.shape[1]:
            together = self.stats.similarity[hist][:, [row]].toarray().ravel()
            if together.max(initial=0.0) > 0:
                j = int(np.argmax(together))
                verb = VERBS.get(events[j], "viewed")
                title = self.catalogue.records[hist[j]]["title"]
                return f"often chosen with '{title}' you {verb}"
        if cat and cat in set(self.stats.category[hist]):
            return f"popular in {cat}, a category you often explore"
        return f"popular in {cat}" if cat else "popular with people like you"

    def _item(self, row: int, score: float, reason: str) -> dict[str, Any]:
        rec = self.catalogue.records[row]
        return {
            "item_id": rec["item_id"],
            "title": rec["title"],
            "category": rec.get("category") or "",
            "score": round(float(score), 4),
            "reason": reason,
        }

    def similar(self, item_id: str, k: int) -> list[dict[str, Any]]:
        """Items whose text embedding is closest to `item_id`'s."""
        with self.lock:
            row = self.index.row_of.get(item_id)
            if row is None:
                raise InputError(f"unknown item_id {item_id!r}", status_code=404)
            scores, rows = self.index.search(self.index.emb[row][None], k + 1)
            title = self.catalogue.records[row]["title"]
            return [
                self._item(int(r), float(s), f"similar text to '{title}'")
                for r, s in zip(rows[0], scores[0], strict=True)
                if r >= 0 and r != row
            ][:k]

    # ---- online updates --------------------------------------------------------------------

    def add_items(self, records: list[dict[str, Any]], source: str = "request") -> dict[str, Any]:
        """Validates all items, embeds them, then updates index, catalogue and statistics at once."""
        try:
            df = validate_items(pd.DataFrame(records), source)
        except DataError as exc:
            raise InputError(str(exc)) from None
        emb = embed_texts(self.encoder, list(df["text"]))
        clean = df.drop(columns=["text"]).copy()
        clean["created_at"] = clean["created_at"].map(
            lambda t: None if pd.isna(t) else t.isoformat()
        )
        recs = clean.to_dict(orient="records")
        with self.lock:
            self.writer.acquire()
            counts = self.index.upsert([r["item_id"] for r in recs], emb)
            rows = [self.index.row_of[r["item_id"]] for r in recs]
            self.catalogue.upsert(rows, recs)
            new = len(self.catalogue.records) - len(self.stats.popularity)
            if new > 0:
                self.stats.extend(
                    new, [r.get("category") or "" for r in self.catalogue.records[-new:]]
                )
            self.stats.category[rows] = [r.get("category") or "" for r in recs]
            self._persist_items()
        return {**counts, "items": len(self.index), "index": self.index.kind}

    def add_items_file(self, path: Path) -> dict[str, Any]:
        """Adds items from a CSV/JSONL/Parquet file; a malformed file is rejected whole."""
        from shared.data import read_table

        df = read_table(path)
        return self.add_items(df.to_dict(orient="records"), source=str(path))

    def add_items_upload(self, body: bytes, fmt: str) -> dict[str, Any]:
        """Adds items from an uploaded CSV or JSONL body; errors name `uploaded items.<fmt>`."""
        if not body:
            raise InputError("empty body: send the items file as the request body")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"items.{fmt}"
            path.write_bytes(body)
            try:
                return self.add_items_file(path)
            except DataError as exc:
                raise InputError(str(exc).replace(str(path), f"uploaded items.{fmt}")) from None

    def _persist_items(self) -> None:
        """Writes the index and the catalogue as one folder, swapped into place."""
        with atomic_folder(self.live / CATALOGUE) as tmp:
            self.index.save(tmp / "index")
            self.catalogue.save(tmp / "items.jsonl")

    def add_events(self, events: list[dict[str, Any]]) -> dict[str, int]:
        """Logs interactions; an unknown item rejects the request (422 naming it); event ids dedupe."""
        unknown = sorted({e["item_id"] for e in events if e["item_id"] not in self.index.row_of})
        if unknown:
            raise InputError(f"unknown item_id(s): {unknown[:10]}; add them with POST /items first")
        times, bad = parse_timestamps([e.get("ts") for e in events])  # one pass; no `ts`: now
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"event {first + 1}: ts {events[first]['ts']!r}: {TIMESTAMP_RULE}")
        times = times.fillna(pd.Timestamp.now(tz="UTC"))
        df = pd.DataFrame(events)
        weights = event_weights(df, self.cfg.event_weights)
        counts = {"accepted": 0, "duplicates": 0}
        with self.lock:
            self.writer.acquire()
            self._log_events(events, list(times), weights, counts)
        return counts

    def _log_events(
        self, events: list[dict[str, Any]], times: list, weights: np.ndarray, counts: dict
    ) -> None:
        with (self.live / "events.jsonl").open("a", encoding="utf-8") as log_file:
            for event, ts, weight in zip(events, times, weights, strict=True):
                row = self.index.row_of[event["item_id"]]
                status = self.history.apply(
                    str(event["user_id"]),
                    row,
                    float(weight),
                    ts.timestamp(),
                    event["event"],
                    event.get("event_id") or "",
                )
                if status == "duplicate":
                    counts["duplicates"] += 1
                    continue
                counts["accepted"] += 1
                if status == "new_item":
                    self.stats.popularity[row] += 1
                    self.stats.trending[row] += 1
                    self.stats.touch()
                    self.new_contacts += 1
                log_file.write(
                    json.dumps({**event, "ts": ts.isoformat(), "weight": float(weight)}) + "\n"
                )
        if self.new_contacts >= self.cfg.cooccurrence_refresh_events:
            self.refresh_cooccurrence()

    def refresh_cooccurrence(self) -> None:
        """Recomputes the item-item co-occurrence and the ALS factors from every history,
        logged events included.

        Popularity, trend and the user's own history change with each event; the co-occurrence
        (a global sparse matrix) and the factors are rebuilt after `cooccurrence_refresh_events`
        first contacts (the factors in a background thread).
        """
        with self.lock:
            rows = [np.fromiter(e, dtype=np.int64) for e in self.history.users.values()]
            n = len(self.stats.popularity)
            self.stats.similarity = item_similarity(rows, n)
            self.new_contacts = 0
        # ALS takes seconds on a large catalogue: fitted aside, swapped in when done
        threading.Thread(target=self._refit_factors, args=(rows, n), daemon=True).start()

    def _refit_factors(self, rows: list[np.ndarray], n: int) -> None:
        factors = ItemFactors.fit(rows, n)
        with self.lock:
            if factors is not None and len(self.stats.popularity) > n:  # items added meanwhile
                factors.extend(len(self.stats.popularity) - n)
            self.stats.factors = factors

    def gauges(self) -> dict[str, float]:
        """Live numbers for `/metrics`: catalogue size and users with a history."""
        return {"catalogue_items": len(self.index), "users": len(self.history.users)}

    def info(self) -> dict[str, Any]:
        return {
            "model": self.manifest["model_name"],
            "precision": self.precision,
            "metrics": self.manifest["metrics"],
            "items": len(self.index),
            "index": self.index.kind,
            "users": len(self.history.users),
            "ranker": self.ranker.kind,
        }

    def close(self) -> None:
        """Releases the state folder's writer lock (if this runtime wrote)."""
        self.writer.release()


def state_dir(artifact_dir: Path, data_dir: Path | None) -> Path:
    """The live state folder: `<data_dir>/recommender`, or `<artifact>/live` without a data dir."""
    return Path(data_dir) / "recommender" if data_dir else Path(artifact_dir) / "live"
