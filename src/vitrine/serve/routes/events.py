"""Shopper events: durable before the response, applied to the shopper at once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from fastapi import APIRouter

from vitrine.serve.deps import EngineDep, StateDep, WriteKey
from vitrine.serve.schemas import ErrorOut, EventIn, EventsIn, EventsOut

router = APIRouter(prefix="/events", tags=["events"])


def _naive_utc(ts: datetime | None, now: datetime) -> datetime:
    if ts is None:
        return now
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


@router.post("", response_model=EventsOut, dependencies=[WriteKey],
             responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 413: {"model": ErrorOut},
                        422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def record_events(body: EventsIn, engine: EngineDep, state: StateDep) -> dict:
    """Record one event or a batch (up to 10,000); all or none are stored."""
    events: list[EventIn] = body if isinstance(body, list) else [body]
    now = datetime.now(UTC).replace(tzinfo=None)
    records = []
    for e in events:
        rec = e.model_dump()
        rec["timestamp"] = _naive_utc(e.timestamp, now)
        records.append(rec)
    with state.writing() as engine:
        n = engine.record_events(records)
    for ev, c in Counter(e.event for e in events).items():
        state.metrics.events.labels(ev).inc(c)
    for uid in {e.user_id for e in events if e.event != "impression"}:
        state.suggest.note_user(engine.user_key(uid))
    return {"accepted": n}
