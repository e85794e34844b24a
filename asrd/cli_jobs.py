"""``asrd`` commands on the job database and the running daemon: retry, rerun, run-now, plan, report,
notify (``asrd.cli`` parses the command line and calls these)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrd.cli import settings_from


def report(args: argparse.Namespace) -> int:
    import time

    from asrd.control.jobs import JobDatabaseError
    from asrd.control.jobs_sqlite import SqliteJobStore
    from asrd.control.report import RENDER, by_day, parse_since
    from asrd.control.statedir import DB_NAME

    try:
        span = parse_since(args.since)
    except ValueError as err:
        print(f"asrd report: --since {err}", file=sys.stderr)
        return 2
    settings = settings_from(args.config, {})
    try:
        store = SqliteJobStore.open_readonly(settings.daemon.state_dir / DB_NAME)
    except (FileNotFoundError, JobDatabaseError) as err:
        print(f"asrd report: {err}", file=sys.stderr)
        return 1
    try:
        outcomes = store.outcomes(time.time() - span)
    finally:
        store.close()
    print(RENDER[args.format](by_day(outcomes)), end="")
    return 0


def notify(args: argparse.Namespace) -> int:
    import time

    from asrd.control.report import notify_test

    settings = settings_from(args.config, {})
    if not settings.notify:
        print("asrd notify test: no [[notify]] targets in the configuration", file=sys.stderr)
        return 1
    results = notify_test(settings.notify, time.time())
    for target, answer in results:
        print(f"{target}: {answer}")
    return 0 if all(answer == "ok" for _, answer in results) else 1


def retry(args: argparse.Namespace) -> int:
    import time

    from asrd.control.jobs_sqlite import SqliteJobStore
    from asrd.control.statedir import DB_NAME

    if not args.files and not args.failed:
        print("asrd retry: name files, or --failed for all of them", file=sys.stderr)
        return 2
    settings = settings_from(args.config, {})
    db = settings.daemon.state_dir / DB_NAME
    if not db.exists():
        print(f"asrd retry: no job database at {db}", file=sys.stderr)
        return 1
    store = SqliteJobStore(db, max_attempts=settings.daemon.max_attempts)
    try:
        now = time.time()
        count = store.retry(now) if args.failed else sum(store.retry(now, p.resolve()) for p in args.files)
    finally:
        store.close()
    print(f"{count} file(s) queued again")
    if count:
        wake_daemon(settings.daemon.state_dir)
    return 0 if count or args.failed else 1


def plan(args: argparse.Namespace) -> int:
    import time

    from asrd.control.planview import as_json, plan_report, render

    doc = plan_report(settings_from(args.config, {}), time.time())
    print(as_json(doc) if args.json else render(doc))
    return 0


def run_now(args: argparse.Namespace) -> int:
    from asrd.control.schedule import request_run_now

    if not args.files and not args.all:
        print("asrd run-now: name files, or --all for every waiting file", file=sys.stderr)
        return 2
    settings = settings_from(args.config, {})
    missing = [p for p in args.files if not p.exists()]
    if missing:
        print(f"asrd run-now: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    request_run_now(settings.daemon.state_dir, None if args.all else [p.resolve() for p in args.files])
    print("asked the daemon to start " + ("every waiting file" if args.all else f"{len(args.files)} file(s)") + " now")
    wake_daemon(settings.daemon.state_dir)
    return 0


def rerun(args: argparse.Namespace) -> int:
    import time

    from asrd.control.jobs_sqlite import SqliteJobStore
    from asrd.control.reruns import rerun_files
    from asrd.control.runs import RerunOptions
    from asrd.control.statedir import DB_NAME

    settings = settings_from(args.config, {})
    words = None if args.hotwords is None else tuple(w.strip() for w in args.hotwords.split(",") if w.strip())
    options = RerunOptions(language=args.language, hotwords=words, model=args.model,
                           itn=None if args.itn is None else args.itn == "on")
    db = settings.daemon.state_dir / DB_NAME
    if not db.exists():
        print(f"asrd rerun: no job database at {db}", file=sys.stderr)
        return 1
    store = SqliteJobStore(db, max_attempts=settings.daemon.max_attempts)
    try:
        queued, lines = rerun_files(store, args.files, options, settings.model.name, settings.model.rerun_models,
                                    time.time())
    finally:
        store.close()
    print("\n".join(lines))
    if queued:
        wake_daemon(settings.daemon.state_dir)
    return 0 if queued == len(args.files) else 1


def wake_daemon(state_dir: Path) -> None:
    """SIGUSR1 to the daemon holding ``state_dir``: it looks at the job database at once (its handler
    only wakes the loop) rather than on its next idle tick, up to a minute later."""
    import os
    import signal

    from asrd.control.statedir import running_pid

    pid = running_pid(state_dir)
    if pid is None or pid <= 0:
        print("(the daemon is not running: they will be done when it starts)")
        return
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError as err:  # another user's daemon: it still sees the change on its next tick
        print(f"(could not wake the daemon, pid {pid}: {err.strerror}; it picks them up within a minute)")
