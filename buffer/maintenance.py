"""Work on the log that no caller asks for: sealing, eviction, deletion, garbage.

Every function runs inside a transaction the caller opened (`BEGIN IMMEDIATE`)
and keeps the accounting exact: whatever leaves the log is either settled by
every destination already, or counted as dropped for each destination that had
not settled it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from totem_agent.buffer import codec
from totem_agent.buffer.model import EVICTED_AGE, EVICTED_SIZE
from totem_agent.buffer.rows import (
    CHUNK,
    CYCLE,
    ROW_COLUMNS,
    Catalog,
    LogRow,
    decode_layout,
    encode_layout,
    int_array,
)

# Eviction for size frees down to this share of the bound, so that it runs in
# bursts rather than at every append once the buffer is full.
LOW_WATER = 0.9
# Hand free pages back to the filesystem when this many pile up (a drained
# outage), not after every acknowledged cycle.
VACUUM_MIN_FREE_PAGES = 256


def add_counter(conn: sqlite3.Connection, name: str, value: int,
                destination: str = "", reason: str = "") -> None:
    if value:
        conn.execute("INSERT INTO counters VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
                     "SET value = value + excluded.value", (name, destination, reason, value))


def counter(conn: sqlite3.Connection, name: str, destination: str = "", reason: str = "") -> int:
    row = conn.execute("SELECT value FROM counters WHERE name = ? AND destination = ? "
                       "AND reason = ?", (name, destination, reason)).fetchone()
    return int(row[0]) if row else 0


def by_reason(conn: sqlite3.Connection, name: str, destination: str = "") -> dict[str, int]:
    return dict(conn.execute("SELECT reason, value FROM counters WHERE name = ? "
                             "AND destination = ? AND value != 0", (name, destination)))


def fetch_rows(conn: sqlite3.Connection, where: str = "1",
               params: Sequence[object] = (), limit: int = -1) -> list[LogRow]:
    return [LogRow(*r) for r in conn.execute(
        f"SELECT {ROW_COLUMNS} FROM log WHERE {where} ORDER BY first_seq LIMIT ?",
        (*params, limit))]


def used_bytes(conn: sqlite3.Connection) -> int:
    # One statement, not three PRAGMAs: this runs after every append.
    pages, free, size = conn.execute("SELECT * FROM pragma_page_count(), "
                                     "pragma_freelist_count(), pragma_page_size()").fetchone()
    return int((pages - free) * size)


def layout_id(conn: sqlite3.Connection, series_ids: Sequence[int]) -> int:
    digest, blob = encode_layout(series_ids)
    row = conn.execute("SELECT id FROM layouts WHERE digest = ?", (digest,)).fetchone()
    if row:
        return int(row[0])
    cur = conn.execute("INSERT INTO layouts (digest, series_ids) VALUES (?, ?)", (digest, blob))
    assert cur.lastrowid is not None
    return cur.lastrowid


# -- deletion and eviction ------------------------------------------------------

def delete_settled(conn: sqlite3.Connection) -> int:
    """Delete the rows every destination has settled. None without destinations."""
    low = conn.execute("SELECT min(cursor) FROM destinations").fetchone()[0]
    if low is None:
        return 0
    return conn.execute("DELETE FROM log WHERE last_seq <= ?", (low,)).rowcount


def evict(conn: sqlite3.Connection, rows: Sequence[LogRow], reason: str) -> int:
    """Delete these oldest rows, counting their unsettled samples as dropped."""
    if not rows:
        return 0
    last = rows[-1].last_seq
    for name, cursor in conn.execute(
            "SELECT name, cursor FROM destinations WHERE cursor < ?", (last,)).fetchall():
        lost = sum(row.samples_after(cursor) for row in rows)
        add_counter(conn, "dropped_samples", lost, name, reason)
        conn.execute("UPDATE destinations SET cursor = ? WHERE name = ?", (last, name))
    total = sum(row.samples for row in rows)
    add_counter(conn, "evicted_samples", total, "", reason)
    conn.execute("DELETE FROM log WHERE first_seq BETWEEN ? AND ?", (rows[0].first_seq, last))
    return total


def enforce_bounds(conn: sqlite3.Connection, max_size_bytes: int | None,
                   max_age_ms: int | None, now_ms: int) -> int:
    """Evict the oldest rows beyond the age, then the size bound. Returns samples evicted."""
    evicted = 0
    if max_age_ms is not None:
        old: list[LogRow] = []
        for row in fetch_rows(conn, "last_ts < ?", (now_ms - max_age_ms,)):
            # Only from the oldest end, so that what remains stays contiguous.
            if old and row.first_seq != old[-1].last_seq + 1:
                break
            if not old and row.first_seq != _oldest_seq(conn):
                break
            old.append(row)
        evicted += evict(conn, old, EVICTED_AGE)
    if max_size_bytes is not None:
        for _ in range(16):
            used = used_bytes(conn)
            if used <= max_size_bytes:
                break
            need = used - max_size_bytes * LOW_WATER
            picked: list[LogRow] = []
            freed = 0
            for row, size in _oldest_with_sizes(conn):
                if freed >= need:
                    break
                picked.append(row)
                freed += size
            if not picked:
                break  # only the newest row is left: it stays, whatever its size
            evicted += evict(conn, picked, EVICTED_SIZE)
    return evicted


def _oldest_seq(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT min(first_seq) FROM log").fetchone()
    return None if row[0] is None else int(row[0])


def _oldest_with_sizes(conn: sqlite3.Connection) -> list[tuple[LogRow, int]]:
    """The oldest rows, all but the newest, each with an estimate of the bytes it holds."""
    out = []
    for *fields, size in conn.execute(
            f"SELECT {ROW_COLUMNS}, length(data) + coalesce(length(timestamps), 0) "
            "+ coalesce(length(counts), 0) + 64 FROM log "
            "WHERE first_seq < (SELECT max(first_seq) FROM log) ORDER BY first_seq LIMIT 4096"):
        out.append((LogRow(*fields), int(size)))
    return out


def free_pages_to_release(conn: sqlite3.Connection) -> bool:
    free, pages = conn.execute("SELECT * FROM pragma_freelist_count(), "
                               "pragma_page_count()").fetchone()
    return bool(free >= VACUUM_MIN_FREE_PAGES and free * 4 >= pages)


def release_free_pages(conn: sqlite3.Connection) -> None:
    """Give the freelist back to the filesystem. Outside any transaction.

    `incremental_vacuum` frees one page per step of its statement, and
    sqlite3's `execute` steps once; `executescript` steps it to the end (and
    would commit an open transaction first, hence: outside one).
    """
    if conn.in_transaction:
        raise RuntimeError("release_free_pages runs in its own transaction")
    conn.executescript("PRAGMA incremental_vacuum;")


# -- sealing --------------------------------------------------------------------

def seal(conn: sqlite3.Connection, catalog: Catalog, chunk_cycles: int, level: int = 6) -> bool:
    """Turn the oldest `chunk_cycles` single-cycle rows into one chunk row, if there are enough."""
    head = conn.execute("SELECT count(*) FROM log WHERE kind = ?", (CYCLE,)).fetchone()[0]
    if head < chunk_cycles:
        return False
    rows = conn.execute(f"SELECT {ROW_COLUMNS}, data FROM log WHERE kind = ? "
                        "ORDER BY first_seq LIMIT ?", (CYCLE, chunk_cycles)).fetchall()
    cycles = [LogRow(*r[:-1]) for r in rows]
    if cycles[-1].last_seq - cycles[0].first_seq + 1 != len(cycles):
        raise AssertionError(f"buffer log cycles {cycles[0].first_seq}..{cycles[-1].last_seq} "
                             "are not contiguous")
    catalog.load(conn, {c.layout_id for c in cycles}, series=False)
    packed = [codec.decode_cycle_packed(r[-1]) for r in rows]
    layouts = [catalog.layouts[c.layout_id] for c in cycles]
    for layout, raw in zip(layouts, packed, strict=True):
        if len(raw) != 8 * len(layout):
            raise codec.CodecError(f"a cycle row of {len(layout)} series holds "
                                   f"{len(raw) // 8} values")
    union, columns = _columns(layouts, packed)
    blob = codec.encode_chunk(columns, len(cycles), level)
    times = [c.first_ts for c in cycles]
    counts = [c.samples for c in cycles]
    conn.execute("DELETE FROM log WHERE first_seq BETWEEN ? AND ?",
                 (cycles[0].first_seq, cycles[-1].last_seq))
    conn.execute(f"INSERT INTO log ({ROW_COLUMNS}, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
        cycles[0].first_seq, cycles[-1].last_seq, min(times), max(times), sum(counts), CHUNK,
        layout_id(conn, union), int_array("q", times), int_array("i", counts), blob))
    return True


def _columns(layouts: list[list[int]],
             packed: list[bytes]) -> tuple[list[int], list[codec.Column]]:
    """The chunk's series and their columns, from each cycle's float64 bytes."""
    first = layouts[0]
    if all(layout is first or layout == first for layout in layouts):
        # The usual case: the same series in every cycle; slicing does the transpose
        # (of the bytes joined once: no list of floats per cycle in between).
        flat = codec.from_le("d", b"".join(packed))
        n = len(first)
        return first, [(None, flat[j::n].tolist()) for j in range(n)]
    union: dict[int, tuple[list[int], list[float]]] = {}
    for index, (layout, raw) in enumerate(zip(layouts, packed, strict=True)):
        for sid, value in zip(layout, codec.unpack_values(raw), strict=True):
            column = union.setdefault(sid, ([], []))
            column[0].append(index)
            column[1].append(value)
    cycles = len(layouts)
    return list(union), [(None if len(present) == cycles else present, vals)
                         for present, vals in union.values()]


# -- garbage --------------------------------------------------------------------

def collect_garbage(conn: sqlite3.Connection) -> int:
    """Delete layouts no row uses (but the newest) and series no layout holds."""
    deleted = conn.execute(
        "DELETE FROM layouts WHERE id != (SELECT max(id) FROM layouts) "
        "AND id NOT IN (SELECT layout_id FROM log)").rowcount
    if not deleted:
        return 0
    keep: set[int] = set()
    for (blob,) in conn.execute("SELECT series_ids FROM layouts"):
        keep.update(decode_layout(blob))
    gone = [(sid,) for (sid,) in conn.execute("SELECT id FROM series") if sid not in keep]
    conn.executemany("DELETE FROM series WHERE id = ?", gone)
    return len(gone)
