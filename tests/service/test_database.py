"""SQLite set-up under contention: a second process's lock is waited for, not turned into a crash."""

from __future__ import annotations

import sqlite3
import threading
import time

from bandit_service.settings import Settings
from bandit_service.storage.database import open_database


def hold_exclusive_lock(path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_switching_a_new_file_to_wal_waits_for_another_process_lock(tmp_path):
    path = tmp_path / "new.db"
    sqlite3.connect(path).close()  # an empty file in rollback-journal mode
    ready = threading.Event()
    holder = threading.Thread(target=hold_exclusive_lock, args=(path, 0.3, ready))
    holder.start()
    ready.wait()
    db = open_database(Settings(database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=5_000))
    try:
        with db.read.connect() as conn:  # connecting runs the pragmas, including journal_mode=WAL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        holder.join()
        db.dispose()


def test_the_writer_lock_gives_one_writer_the_turn_at_a_time(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}")
    first, second = open_database(settings), open_database(settings)  # as two worker processes would
    order: list[str] = []
    entered = threading.Event()

    def hold() -> None:
        with first.writer_lock():
            entered.set()
            time.sleep(0.2)
            order.append("first done")

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait()
    with second.writer_lock():
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_the_writer_lock_is_a_no_op_without_a_file():
    db = open_database(Settings(database_url="sqlite://"))
    with db.writer_lock(), db.writer_lock():  # re-entrant use is harmless when there is no file
        pass
