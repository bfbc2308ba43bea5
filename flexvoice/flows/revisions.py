"""Drafts and revisions of flows, kept in the store (the node's SQLite file, or the PostgreSQL
several nodes share) beside the flow files.

The file in the flows folder is what calls run (the source of truth); the designer keeps one
shared draft per flow while people edit, and each publication (from the designer, or a PUT on
/v1/flows) records a revision: the text, who, when, and why. A restore publishes an old text
again as a new revision, so history is never rewritten.

Concurrent edits are caught by ETags: the ETag of a flow is the SHA-256 of the text an editor
sees (its draft, else the published file); an edit or a publish must name the ETag it started
from, and a different one means someone else changed it meanwhile (412, both versions shown).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flexvoice.storage.engine import Connection, both
from flexvoice.storage.migrate import migrate

MIGRATIONS = [
    both(
        """
    CREATE TABLE flow_drafts (
        flow TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        author TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE flow_revisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        text TEXT NOT NULL,
        digest TEXT NOT NULL,
        author TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX flow_revisions_flow ON flow_revisions (flow, id);
    """
    ),
    # Test callers: these numbers, calling the account, hear the flow's draft.
    both(
        """
    CREATE TABLE flow_testers (
        flow TEXT NOT NULL,
        caller TEXT NOT NULL,
        PRIMARY KEY (flow, caller)
    );
    """
    ),
]


@dataclass(frozen=True)
class Draft:
    flow: str
    text: str
    author: str
    updated_at: str


@dataclass(frozen=True)
class Revision:
    id: int
    flow: str
    text: str
    digest: str
    author: str
    message: str
    created_at: str

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow": self.flow,
            "digest": self.digest,
            "author": self.author,
            "message": self.message,
            "created_at": self.created_at,
        }


def ensure_schema(conn: Connection) -> None:
    migrate(conn, "flow_revisions", MIGRATIONS)


def etag(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def get_draft(conn: Connection, flow: str) -> Draft | None:
    ensure_schema(conn)
    row = conn.execute(
        "SELECT flow, text, author, updated_at FROM flow_drafts WHERE flow = ?", (flow,)
    ).fetchone()
    return Draft(*row) if row else None


def drafts(conn: Connection) -> dict[str, Draft]:
    ensure_schema(conn)
    rows = conn.execute("SELECT flow, text, author, updated_at FROM flow_drafts")
    return {row[0]: Draft(*row) for row in rows}


def save_draft(conn: Connection, flow: str, text: str, author: str) -> Draft:
    ensure_schema(conn)
    draft = Draft(flow, text, author, _now())
    conn.execute(
        "INSERT INTO flow_drafts (flow, text, author, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (flow) DO UPDATE SET text = excluded.text, author = excluded.author,"
        " updated_at = excluded.updated_at",
        (flow, text, author, draft.updated_at),
    )
    return draft


def drop_draft(conn: Connection, flow: str) -> None:
    ensure_schema(conn)
    conn.execute("DELETE FROM flow_drafts WHERE flow = ?", (flow,))


def record(conn: Connection, flow: str, text: str, author: str, message: str) -> Revision:
    ensure_schema(conn)
    created = _now()
    row = conn.execute(
        "INSERT INTO flow_revisions (flow, text, digest, author, message, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (flow, text, etag(text), author, message, created),
    ).fetchone()
    return Revision(int(row[0]), flow, text, etag(text), author, message, created)


def revisions(conn: Connection, flow: str) -> list[Revision]:
    """Newest first."""
    ensure_schema(conn)
    rows = conn.execute(
        "SELECT id, flow, text, digest, author, message, created_at FROM flow_revisions"
        " WHERE flow = ? ORDER BY id DESC",
        (flow,),
    )
    return [Revision(*row) for row in rows]


def get_revision(conn: Connection, flow: str, rev_id: int) -> Revision | None:
    ensure_schema(conn)
    row = conn.execute(
        "SELECT id, flow, text, digest, author, message, created_at FROM flow_revisions"
        " WHERE flow = ? AND id = ?",
        (flow, rev_id),
    ).fetchone()
    return Revision(*row) if row else None


def published_text(conn: Connection, flow: str, digest: str) -> str | None:
    """The text of a publication of `flow` by its digest (its ETag)."""
    ensure_schema(conn)
    row = conn.execute(
        "SELECT text FROM flow_revisions WHERE flow = ? AND digest = ? ORDER BY id DESC LIMIT 1",
        (flow, digest),
    ).fetchone()
    return str(row[0]) if row else None


def text_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )


def step_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    """Steps added, removed and changed between two flows' `steps` mappings."""
    return {
        "added": [s for s in new if s not in old],
        "removed": [s for s in old if s not in new],
        "changed": [s for s in new if s in old and old[s] != new[s]],
    }


def testers(conn: Connection, flow: str) -> list[str]:
    ensure_schema(conn)
    rows = conn.execute("SELECT caller FROM flow_testers WHERE flow = ? ORDER BY caller", (flow,))
    return [row[0] for row in rows]


def set_testers(conn: Connection, flow: str, callers: list[str]) -> None:
    ensure_schema(conn)
    conn.execute("DELETE FROM flow_testers WHERE flow = ?", (flow,))
    conn.executemany(
        "INSERT INTO flow_testers (flow, caller) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(flow, c) for c in callers],
    )
