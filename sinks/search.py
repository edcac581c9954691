"""Search across every video: moments (video, time) where a word is spoken, text is on screen, an object,
face track, sound event or topic is found, narrowed by video filters.

The query's words become lower-cased tokens matched with `hasToken(lower(column), token)`, the exact
expression the token bloom-filter skip indexes in schemas/tables.py are built on, so ClickHouse skips the
granules that cannot hold a token instead of scanning every row. A spoken word matches when it is any of
the tokens (words are stored one per row); text and labels match when they hold every token.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from reelscope.sinks.store import Store

Kind = Literal["word", "text", "object", "face", "sound", "topic"]
KINDS: tuple[Kind, ...] = ("word", "text", "object", "face", "sound", "topic")
MOMENT_KINDS = ("face", "sound", "topic")
"""Kinds kept in the moments table; the others have tables of their own."""
MAX_TOKENS = 8
_TOKEN = re.compile(r"[^\W_]+")


class SearchFilters(BaseModel):
    """What GET /search takes besides the query: which kinds of moment, and which videos."""

    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS))
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    has_speech: bool | None = None
    language: str | None = None
    limit: int = 100


class Moment(BaseModel):
    """One hit: where in which video. `detail` is the speaker (words) or the track / item id."""

    video_id: str
    kind: Kind
    start_s: float
    end_s: float
    text: str
    detail: str
    conf: float | None
    status: str
    uri: str
    duration_s: float


class SearchResults(BaseModel):
    query: str
    tokens: list[str]
    moments: list[Moment]


def tokens(query: str) -> list[str]:
    """The query's distinct lower-cased tokens (letters and digits), in order, at most MAX_TOKENS."""
    out: list[str] = []
    for token in _TOKEN.findall(query.lower()):
        if token not in out:
            out.append(token)
    return out[:MAX_TOKENS]


def _match(column: str, count: int, every: bool) -> str:
    parts = [f"hasToken(lower({column}), %(t{i})s)" for i in range(count)]
    return "(" + (" AND " if every else " OR ").join(parts) + ")"


def _select(db: str, table: str, columns: tuple[str, ...], where: str) -> str:
    """One table's hits under the common column names (each branch of the UNION names its own)."""
    named = ", ".join(f"{c} AS {n}" for c, n in zip(columns, HIT_COLUMNS, strict=True))
    return f"SELECT {named} FROM {db}.{table} FINAL WHERE {where}"


HIT_COLUMNS = ("video_id", "kind", "start_s", "end_s", "text", "detail", "conf")
NO_CONF = "CAST(NULL, 'Nullable(Float64)')"


def _hits(db: str, kinds: list[Kind], count: int) -> list[str]:
    """One SELECT per table holding a wanted kind, all with the same columns."""
    out = []
    if "word" in kinds:
        columns = ("video_id", "'word'", "start_s", "end_s", "word", "toString(speaker)", NO_CONF)
        out.append(_select(db, "words", columns, _match("word", count, every=False)))
    if "text" in kinds:
        columns = ("video_id", "'text'", "start_s", "end_s", "text", "''", NO_CONF)
        out.append(_select(db, "text_events", columns, _match("text", count, every=True)))
    if "object" in kinds:
        columns = (
            "video_id",
            "'object'",
            "first_s",
            "last_s",
            "toString(label)",
            "toString(track_id)",
            NO_CONF,
        )
        out.append(_select(db, "tracks", columns, _match("label", count, every=True)))
    if any(k in kinds for k in MOMENT_KINDS):
        columns = ("video_id", "toString(kind)", "start_s", "end_s", "text", "item", "conf")
        where = f"kind IN %(others)s AND {_match('text', count, every=True)}"
        out.append(_select(db, "moments", columns, where))
    return out


def _video_filters(db: str, f: SearchFilters) -> list[str]:
    where = []
    if f.status:
        where.append("status = %(status)s")
    if f.since:
        where.append("submitted_at >= %(since)s")
    if f.until:
        where.append("submitted_at < %(until)s")
    if f.min_duration_s is not None:
        where.append("duration_s >= %(min_d)s")
    if f.max_duration_s is not None:
        where.append("duration_s <= %(max_d)s")
    if f.has_speech is not None:
        where.append(
            f"video_id {'' if f.has_speech else 'NOT '}IN (SELECT DISTINCT video_id FROM {db}.words)"
        )
    if f.language:
        where.append(
            f"video_id IN (SELECT video_id FROM {db}.reconstructions FINAL "
            f"WHERE JSONExtractString(document, 'transcript', 'language') = %(lang)s)"
        )
    return where


def search(store: Store, query: str, f: SearchFilters) -> SearchResults:
    """Moments matching `query` in the videos the filters keep, newest video first, then by time."""
    found = tokens(query)
    if not found or not f.kinds:
        return SearchResults(query=query, tokens=found, moments=[])
    db = store.db
    where = _video_filters(db, f)
    params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(found)}
    params.update(
        others=[k for k in f.kinds if k in MOMENT_KINDS],
        status=f.status or "",
        since=f.since,
        until=f.until,
        min_d=f.min_duration_s,
        max_d=f.max_duration_s,
        lang=f.language or "",
        n=f.limit,
    )
    sql = (
        f"SELECT h.video_id AS video_id, h.kind AS kind, h.start_s AS start_s, h.end_s AS end_s, h.text AS text, "
        f"h.detail AS detail, h.conf AS conf, v.status AS status, v.uri AS uri, v.duration_s AS duration_s "
        f"FROM ({' UNION ALL '.join(_hits(db, list(f.kinds), len(found)))}) AS h "
        f"INNER JOIN (SELECT video_id, status, uri, duration_s, submitted_at FROM {db}.videos FINAL"
        f"{' WHERE ' + ' AND '.join(where) if where else ''}) AS v ON h.video_id = v.video_id "
        f"ORDER BY v.submitted_at DESC, h.video_id, h.start_s, h.kind LIMIT %(n)s"
    )
    rows = store.rows(sql, **{k: v for k, v in params.items() if f"%({k})s" in sql})
    return SearchResults(query=query, tokens=found, moments=[Moment(**r) for r in rows])
