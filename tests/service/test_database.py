"""SQLite set-up under contention: a second process's lock is waited for, not turned into a crash; the writer
lock of the SQLite speed-ups queues writers. SQLite only: these are about the file and its locks."""

from __future__ import annotations

import sqlite3
import threading
import time

from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.sqlite_speedups import writer_lock_for


def hold_exclusive_lock(path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_switching_a_new_file_to_wal_waits_for_another_process_lock(database_url, sqlite_file):
    sqlite3.connect(sqlite_file).close()  # an empty file in rollback-journal mode
    ready = threading.Event()
    holder = threading.Thread(target=hold_exclusive_lock, args=(sqlite_file, 0.3, ready))
    holder.start()
    ready.wait()
    db = open_database(Settings(database_url=database_url, sqlite_busy_timeout_ms=5_000))
    try:
        with db.read.connect() as conn:  # connecting runs the pragmas, including journal_mode=WAL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        holder.join()
        db.dispose()


def test_the_writer_lock_gives_one_writer_the_turn_at_a_time(sqlite_file):
    path = str(sqlite_file)
    first, second = writer_lock_for(path), writer_lock_for(path)  # as two worker processes would
    assert first is not None and second is not None
    order: list[str] = []
    entered = threading.Event()

    def hold() -> None:
        with first.hold():
            entered.set()
            time.sleep(0.2)
            order.append("first done")

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait()
    with second.hold():
        order.append("second in")
    thread.join()
    first.close()
    second.close()
    assert order == ["first done", "second in"]


def test_an_in_memory_database_has_no_writer_lock():
    assert writer_lock_for(":memory:") is None and writer_lock_for("") is None
