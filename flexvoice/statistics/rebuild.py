"""The rollups made again from the call registry (after a fix in how a call's facts are read,
or to fill a store the rollups just moved to), and checked against it.

A rebuild may run while nodes take calls. It reads the ended calls and writes their rows in
one write (`writing`: the nodes' batches wait for it), and notes the recent ones as counted in
`stats_applied`, so that a call a node still holds in its batch - ended, not yet written - is
not added a second time when the node writes it: the node's `claim` finds it noted. A call
that ends after the rebuild read the registry is added by its node as usual.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flexvoice.statistics.collector import Collector, claim, writing
from flexvoice.statistics.rollup import (
    TABLES,
    CallSource,
    differences,
    read_rows,
    recount,
    write_rows,
)
from flexvoice.storage.engine import Connection


def rebuild(conn: Connection, source: CallSource, now: datetime | None = None) -> int:
    """Replace the rollups with a recomputation from every ended call; the calls counted."""
    now = now or datetime.now(UTC)
    # Older calls than the catch-up looks at cannot be waiting in a node's batch (a batch is
    # written within a second, or added by the catch-up at the node's next start).
    since = (now - timedelta(days=Collector.CATCH_UP_DAYS + 1)).isoformat()
    with writing(conn):
        rows, counted = recount(conn, source)
        for table in TABLES:
            conn.execute(f"DELETE FROM {table.name}")
        write_rows(conn, rows)
        claim(conn, [(call_id, ended) for call_id, ended in counted if ended >= since])
    return len(counted)


def verify(conn: Connection, source: CallSource, limit: int = 10) -> list[str]:
    """The differences between the rollups and a recomputation, read in one transaction."""
    with writing(conn):  # no batch lands between the two reads
        return differences(read_rows(conn), recount(conn, source)[0], limit)
