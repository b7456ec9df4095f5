"""Feedback on answers (👍/👎, a comment, "the right place is …"), kept in SQLite for review.

    FeedbackStore(path)             one database file; `FeedbackStore.from_env()` honours APP_FEEDBACK_DB
    store.add(Feedback) -> id       store.update(id, …), store.delete(id), store.rows(), store.stats()
    store.export_candidates(out)    the 👎 rows as eval-format JSON lines (eval/README.md), for review

Nothing here is read when answering: feedback never changes an answer by itself. A person reviews
the exported candidates and adds the good ones to eval/questions.jsonl.

Storage: the standard library's sqlite3, WAL mode (readers never block the writer), a busy
timeout and `BEGIN IMMEDIATE` for writes, so several server processes or threads can write at
once. Each call opens its own connection (sqlite3 connections are not shared across threads).
The schema is versioned with `PRAGMA user_version`; opening a database migrates it forward, and a
database written by a newer version of the app is refused with a message, never altered.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator

from .errors import AppError

__all__ = ["DEFAULT_DB_NAME", "Feedback", "FeedbackError", "FeedbackStore", "SCHEMA_VERSION", "default_db_path"]

SCHEMA_VERSION = 1
DEFAULT_DB_NAME = "feedback.sqlite3"
MAX_COMMENT_CHARS = 2000

# Each entry takes the schema from version i to i + 1; append, never edit a released one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL,               -- ISO 8601, UTC
        rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
        question TEXT NOT NULL,
        resolved_question TEXT NOT NULL DEFAULT '',
        history TEXT NOT NULL DEFAULT '[]',  -- JSON list of earlier questions
        found INTEGER NOT NULL,              -- the answer was a quote (1) or a refusal (0)
        answer_text TEXT NOT NULL DEFAULT '',
        section TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        start INTEGER NOT NULL DEFAULT -1,
        "end" INTEGER NOT NULL DEFAULT -1,
        comment TEXT NOT NULL DEFAULT '',
        right_source TEXT NOT NULL DEFAULT '',
        right_section TEXT NOT NULL DEFAULT '',
        right_text TEXT NOT NULL DEFAULT '',
        right_start INTEGER NOT NULL DEFAULT -1,
        right_end INTEGER NOT NULL DEFAULT -1
    );
    CREATE INDEX feedback_rating ON feedback (rating);
    """,
)


class FeedbackError(AppError):
    """The feedback database cannot be used, or a feedback value is invalid (names which and the fix)."""


@dataclass(frozen=True)
class Feedback:
    rating: int  # 1 = 👍, -1 = 👎
    question: str
    found: bool
    resolved_question: str = ""
    history: tuple[str, ...] = ()
    answer_text: str = ""
    section: str = ""
    source: str = ""
    start: int = -1  # the answer's offsets in the source file
    end: int = -1
    comment: str = ""
    right_source: str = ""  # "the right place is …": a passage the user picked, with its offsets
    right_section: str = ""
    right_text: str = ""
    right_start: int = -1
    right_end: int = -1
    id: int | None = None
    created: str = ""

    def __post_init__(self) -> None:
        if self.rating not in (1, -1):
            raise FeedbackError(f"rating must be 1 (👍) or -1 (👎), got {self.rating!r}")
        if not isinstance(self.question, str) or not self.question.strip():
            raise FeedbackError("feedback needs the question it is about")
        if not isinstance(self.comment, str) or len(self.comment) > MAX_COMMENT_CHARS:
            raise FeedbackError(f"comment must be text of at most {MAX_COMMENT_CHARS:,} characters")
        object.__setattr__(self, "history", tuple(self.history))


_COLUMNS = tuple(f.name for f in fields(Feedback) if f.name not in ("id", "created"))


def default_db_path() -> Path:
    """APP_FEEDBACK_DB, else feedback.sqlite3 in the user data folder (e.g. ~/.local/share/hailar-report-qa)."""
    env = os.environ.get("APP_FEEDBACK_DB")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("hailar-report-qa", appauthor=False)) / DEFAULT_DB_NAME


class FeedbackStore:
    """One SQLite file of feedback rows. Cheap to construct; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._ready = False

    @classmethod
    def from_env(cls) -> "FeedbackStore":
        return cls(default_db_path())

    # ------------------------------------------------------------ connection and schema

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise FeedbackError(f"cannot open feedback database {self.path}: {exc}; set APP_FEEDBACK_DB "
                                f"to a writable file") from None
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        # Switching a new file to WAL needs an exclusive lock, and SQLite reports "database is locked"
        # at once (without its busy handler) when another process is switching it too: retry a while.
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return conn
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                if "locked" in str(exc):
                    conn.close()
                    raise FeedbackError(f"{self.path} stayed locked by another process for 30 s; try again, or set "
                                        f"APP_FEEDBACK_DB to another file") from None
                error = exc
            except sqlite3.DatabaseError as exc:
                error = exc
            conn.close()
            raise FeedbackError(f"{self.path} is not a feedback database ({error}); move it away or set "
                                f"APP_FEEDBACK_DB to another file") from None

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as conn:
            if not self._ready:
                self._migrate(conn)
                self._ready = True
            if write:
                conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                yield conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise FeedbackError(f"{self.path} has feedback schema version {version}, newer than this app's "
                                    f"{SCHEMA_VERSION}: update the app, or set APP_FEEDBACK_DB to another file")
            for v in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[v].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {v + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def schema_version(self) -> int:
        with self._db() as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    # ------------------------------------------------------------ rows

    def add(self, fb: Feedback) -> int:
        """Store ``fb``; returns its id."""
        row = self._values(fb)
        row["created"] = fb.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        names = ", ".join(f'"{k}"' for k in row)
        with self._db(write=True) as conn:
            cur = conn.execute(f"INSERT INTO feedback ({names}) VALUES ({', '.join('?' * len(row))})",
                               tuple(row.values()))
            return int(cur.lastrowid)

    def get(self, feedback_id: int) -> Feedback:
        with self._db() as conn:
            r = conn.execute("SELECT * FROM feedback WHERE id = ?", (int(feedback_id),)).fetchone()
        if r is None:
            raise FeedbackError(f"no feedback with id {feedback_id}")
        return self._from_row(r)

    def update(self, feedback_id: int, **changes) -> Feedback:
        """Change some fields of a stored row (a second click, a comment added later); returns the row."""
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise FeedbackError(f"unknown feedback field(s) {sorted(unknown)}; known: {', '.join(_COLUMNS)}")
        new = replace(self.get(feedback_id), **changes)  # validates
        row = {k: v for k, v in self._values(new).items() if k in changes}
        if row:
            sets = ", ".join(f'"{k}" = ?' for k in row)
            with self._db(write=True) as conn:
                conn.execute(f"UPDATE feedback SET {sets} WHERE id = ?", (*row.values(), int(feedback_id)))
        return new

    def delete(self, feedback_id: int) -> None:
        with self._db(write=True) as conn:
            conn.execute("DELETE FROM feedback WHERE id = ?", (int(feedback_id),))

    def rows(self, rating: int | None = None) -> list[Feedback]:
        """All rows in the order they were given, or only 👍 (1) / 👎 (-1)."""
        if not self.path.exists():
            return []  # reading never creates the database
        with self._db() as conn:
            if rating is None:
                cur = conn.execute("SELECT * FROM feedback ORDER BY id")
            else:
                cur = conn.execute("SELECT * FROM feedback WHERE rating = ? ORDER BY id", (rating,))
            return [self._from_row(r) for r in cur.fetchall()]

    def stats(self) -> dict:
        """Counts: total, 👍, 👎, with a comment, with a right place, 👎 on refusals, first/last date."""
        if not self.path.exists():
            return {"database": f"{self.path} (none yet)", "schema_version": SCHEMA_VERSION, "total": 0, "up": 0,
                    "down": 0, "with_comment": 0, "with_right_place": 0, "down_on_refusals": 0, "first": None,
                    "last": None}
        with self._db() as conn:
            r = conn.execute(
                "SELECT COUNT(*) AS total, COALESCE(SUM(rating = 1), 0) AS up, COALESCE(SUM(rating = -1), 0) AS down, "
                "COALESCE(SUM(comment != ''), 0) AS with_comment, COALESCE(SUM(right_start >= 0), 0) AS with_right_place, "
                "COALESCE(SUM(rating = -1 AND found = 0), 0) AS down_on_refusals, MIN(created) AS first, "
                "MAX(created) AS last FROM feedback"
            ).fetchone()
        return {"database": str(self.path), "schema_version": SCHEMA_VERSION, **dict(r)}

    def export_candidates(self, out: IO[str]) -> int:
        """Write each 👎 row as one eval-format JSON line (see eval/README.md); returns how many.

        The lines are candidates for a person to review: ``answers`` is empty until the reviewer
        copies the minimal answer string from ``evidence`` (the place the user pointed to, when
        given) and sets ``kind``; tags say where the line came from.
        """
        n = 0
        for fb in self.rows(rating=-1):
            out.write(json.dumps(candidate(fb), ensure_ascii=False) + "\n")
            n += 1
        return n

    # ------------------------------------------------------------ conversions

    @staticmethod
    def _values(fb: Feedback) -> dict:
        d = {k: v for k, v in asdict(fb).items() if k in _COLUMNS}
        d["history"] = json.dumps(list(fb.history), ensure_ascii=False)
        d["found"] = int(bool(fb.found))
        return d

    @staticmethod
    def _from_row(r: sqlite3.Row) -> Feedback:
        d = dict(r)
        d["history"] = tuple(json.loads(d["history"] or "[]"))
        d["found"] = bool(d["found"])
        return Feedback(**d)


def candidate(fb: Feedback) -> dict:
    """A 👎 row as an eval question (eval/README.md format), ``kind`` "feedback" until reviewed."""
    right = fb.right_start >= 0 and fb.right_text
    if fb.found:
        said = f"答案「{fb.answer_text}」（{fb.section}）"
    else:  # a refusal, or small talk (its reply is the text)
        said = f"回答「{fb.answer_text}」" if fb.answer_text else "回答“报告中没有找到”"
    note = [f"👎 #{fb.id} {fb.created}: {said}"]
    if fb.comment:
        note.append(f"用户说明：{fb.comment}")
    if right:
        note.append(f"用户指出的正确位置：{fb.right_section}（{fb.right_source}，第 {fb.right_start}–{fb.right_end} 字符）")
    return {
        "id": f"fb-{fb.id:04d}",
        "kind": "feedback",
        "tags": ["feedback", "needs-review", f"feedback:{fb.id}"],
        "question": fb.question,
        "history": list(fb.history),
        "answers": [],
        "evidence": [fb.right_text] if right else [],
        "spans": [],
        "note": "；".join(note),
    }
