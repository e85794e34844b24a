"""The ``asrd`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asrd import __version__
from asrd.config import EX_CONFIG, LANGUAGES, ConfigError, Settings, dump_settings, find_config, load_settings
from asrd.logs import setup_logging
from asrd.media import SIDECAR_FORMATS

log = logging.getLogger("asrd")


def _formats(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrd", description="Local speech-to-text: transcripts and subtitles.")
    parser.add_argument("--version", action="version", version=f"asrd {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transcribe", help="transcribe files now, with a progress bar")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--config", type=Path, help="config file (default: $ASRD_CONFIG, ~/.config/asrd, /etc/asrd)")
    p.add_argument("--format", type=_formats, help=f"comma-separated: {','.join(SIDECAR_FORMATS)}")
    p.add_argument("--language", choices=LANGUAGES, help="spoken language, or auto")
    p.add_argument("--model", help="hub id (iic/SenseVoiceSmall) or a local FunASR model directory")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--output-dir", type=Path, help="write sidecars here instead of next to each file")
    p.add_argument("--overwrite", action="store_true", help="replace existing sidecars asrd did not write")

    p = sub.add_parser("run", help="the daemon: watch inbox folders and transcribe what lands there")
    p.add_argument("folders", nargs="*", type=Path, metavar="FOLDER", help="inboxes with default settings")
    p.add_argument("--config", type=Path, help="config file (default: $ASRD_CONFIG, ~/.config/asrd, /etc/asrd)")

    p = sub.add_parser("status", help="is the daemon up, the model loaded, the queue, recent failures")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("energy", help="what the transcripts cost: Wh, Wh per audio hour, overhead, CO2e, cost")
    p.add_argument("--since", default="7d", help="a span back from now (7d, 12h, 30m, 2w) or a date (default 7d)")
    p.add_argument("--by", choices=("day", "inbox", "device", "file"), default="day",
                   help="rows per day, inbox, device or file")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("retry", help="queue quarantined, failed or finished files again")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE")
    p.add_argument("--failed", action="store_true", help="every failed and quarantined file")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("plan", help="[schedule]: the price or carbon series, quiet hours and the backlog's window")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("run-now", help="[schedule]: start waiting files now instead of in their window")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE")
    p.add_argument("--all", action="store_true", help="every waiting file")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("rerun", help="transcribe finished files again with other settings; compare and choose "
                       "the result on the dashboard's compare page")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--language", choices=("auto", "zh", "en", "yue", "ja", "ko"))
    p.add_argument("--hotwords", help="comma-separated ('' for none)")
    p.add_argument("--itn", choices=("on", "off"))
    p.add_argument("--model", help="[model] name or one of [model] rerun_models")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("report", help="per-day summary: files, hours, keyword alerts with excerpts")
    p.add_argument("--since", default="1d", help="how far back: 1d, 12h, 2w ... (default 1d)")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("notify", help="notification targets ([[notify]] tables)")
    p.add_argument("action", choices=("test",), help="test: send a test message to each target")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("check-config", help="validate and print the effective configuration (exit 78 if invalid)")
    p.add_argument("file", nargs="?", type=Path)

    from asrd.bench import add_arguments as bench_arguments

    p = sub.add_parser("bench", help="measure speed against FunASR's own pipelines on the same files")
    bench_arguments(p)

    p = sub.add_parser("model", help="download or check the configured model")
    p.add_argument("action", choices=("fetch", "check"))
    p.add_argument("--config", type=Path)
    p.add_argument("--model", help="hub id or local directory (default: the configured one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(("warning", "info", "debug")[min(args.verbose, 2)])  # `asrd run` then applies log_level
    try:
        if args.command == "transcribe":
            return _transcribe(args)
        if args.command == "run":
            from asrd.control.driver import run

            return run(args.config, args.folders)
        if args.command == "status":
            return _status(args)
        if args.command == "retry":
            return _retry(args)
        if args.command == "rerun":
            return _rerun(args)
        if args.command == "energy":
            return _energy(args)
        if args.command == "report":
            return _report(args)
        if args.command == "plan":
            return _plan(args)
        if args.command == "run-now":
            return _run_now(args)
        if args.command == "notify":
            return _notify(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "model":
            return _model(args)
        if args.command == "bench":
            from asrd.bench import main as bench

            return bench(args)
    except ConfigError as err:
        print(f"asrd: invalid configuration:\n{err}", file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130
    return 2


def _settings(config: Path | None, overrides: dict[str, dict[str, Any]]) -> Settings:
    return load_settings(find_config(config), {k: v for k, v in overrides.items() if v})


def _energy(args: argparse.Namespace) -> int:
    import time

    from asrd.control.statedir import DB_NAME
    from asrd.energy.command import energy_report, parse_since

    settings = _settings(args.config, {})
    try:
        since = parse_since(args.since, time.time())
    except ValueError as err:
        print(f"asrd energy: {err}", file=sys.stderr)
        return 2
    print(energy_report(settings.daemon.state_dir / DB_NAME, since, args.by, as_json=args.json,
                        currency=settings.energy.currency))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    path = find_config(args.file)
    settings = load_settings(path)
    print(f"# effective configuration ({path or 'defaults'} + ASRD_* environment)")
    print(dump_settings(settings), end="")
    return 0


def _status(args: argparse.Namespace) -> int:
    import json

    from asrd.control.status import render, report

    settings = _settings(args.config, {})
    doc = report(settings.daemon.state_dir, settings.web)
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    return 0 if doc["running"] else 3  # LSB: 3 = program is not running


def _report(args: argparse.Namespace) -> int:
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
    settings = _settings(args.config, {})
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


def _notify(args: argparse.Namespace) -> int:
    import time

    from asrd.control.report import notify_test

    settings = _settings(args.config, {})
    if not settings.notify:
        print("asrd notify test: no [[notify]] targets in the configuration", file=sys.stderr)
        return 1
    results = notify_test(settings.notify, time.time())
    for target, answer in results:
        print(f"{target}: {answer}")
    return 0 if all(answer == "ok" for _, answer in results) else 1


def _retry(args: argparse.Namespace) -> int:
    import time

    from asrd.control.jobs_sqlite import SqliteJobStore
    from asrd.control.statedir import DB_NAME

    if not args.files and not args.failed:
        print("asrd retry: name files, or --failed for all of them", file=sys.stderr)
        return 2
    settings = _settings(args.config, {})
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
        _wake_daemon(settings.daemon.state_dir)
    return 0 if count or args.failed else 1


def _plan(args: argparse.Namespace) -> int:
    import time

    from asrd.control.planview import as_json, plan_report, render

    doc = plan_report(_settings(args.config, {}), time.time())
    print(as_json(doc) if args.json else render(doc))
    return 0


def _run_now(args: argparse.Namespace) -> int:
    from asrd.control.schedule import request_run_now

    if not args.files and not args.all:
        print("asrd run-now: name files, or --all for every waiting file", file=sys.stderr)
        return 2
    settings = _settings(args.config, {})
    missing = [p for p in args.files if not p.exists()]
    if missing:
        print(f"asrd run-now: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    request_run_now(settings.daemon.state_dir, None if args.all else [p.resolve() for p in args.files])
    print("asked the daemon to start " + ("every waiting file" if args.all else f"{len(args.files)} file(s)") + " now")
    _wake_daemon(settings.daemon.state_dir)
    return 0


def _rerun(args: argparse.Namespace) -> int:
    import time

    from asrd.control.jobs_sqlite import SqliteJobStore
    from asrd.control.reruns import rerun_files
    from asrd.control.runs import RerunOptions
    from asrd.control.statedir import DB_NAME

    settings = _settings(args.config, {})
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
        _wake_daemon(settings.daemon.state_dir)
    return 0 if queued == len(args.files) else 1


def _wake_daemon(state_dir: Path) -> None:
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


def _model(args: argparse.Namespace) -> int:
    from asrd.recognizer import ModelError
    from asrd.recognizer.modeldir import fetch, resolve

    overrides = {"model": {"name": args.model} if args.model else {}}
    settings = _settings(args.config, overrides)
    try:
        if args.action == "fetch":
            path = fetch(settings.model.name, settings.model.hub)
            if settings.vad.engine == "fsmn":
                fetch(settings.vad.fsmn_model, settings.model.hub)
        else:
            path = resolve(settings.model.name, settings.model.hub, download=False)
            from asrd.recognizer import describe_patches
            from asrd.recognizer.funasr import FunASRRecognizer

            model = settings.model
            recognizer = FunASRRecognizer(path, device=model.device, threads=model.threads,
                                          precision=model.precision, patches=model.funasr_patches)
            print(f"{path}: loads on {recognizer.device}, {recognizer.precision}")
            print(f"FunASR patches: {describe_patches(recognizer.patches)}")
            for name, state in recognizer.patches:
                print(f"  {name:<24} {state}")
            recognizer.close()
    except ModelError as err:
        print(f"asrd: {err}", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from asrd.recognizer import ModelError
    from asrd.worker.audio import DecodeError, probe

    overrides: dict[str, dict[str, Any]] = {
        "model": {k: v for k, v in (("name", args.model), ("device", args.device)) if v},
        "output": {k: v for k, v in (("formats", args.format), ("output_dir", args.output_dir)) if v},
        "transcribe": {"language": args.language} if args.language else {},
    }
    settings = _settings(args.config, overrides)
    failures: list[str] = []
    todo: list[Path] = []
    for path in dict.fromkeys(args.files):  # each file once, even if named twice
        # Cheap header checks first: no point loading a model for a text file named .mp3.
        try:
            if not path.is_file():
                raise DecodeError(path, "no such file" if not path.exists() else "not a regular file")
            probe(path)
            todo.append(path)
        except DecodeError as err:
            failures.append(str(err))
        except OSError as err:
            failures.append(f"{path}: {err.strerror}")
    if todo:
        try:
            pipeline = _pipeline(settings, args.overwrite)
        except ModelError as err:
            print(f"asrd: {err}", file=sys.stderr)
            failures.extend(f"{p}: model unavailable" for p in todo)
            todo = []
        if todo:
            failures.extend(_run_all(pipeline, todo))
    if failures:
        print(f"asrd: {len(failures)} of {len(args.files)} file(s) failed:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _pipeline(settings: Settings, overwrite: bool):  # type: ignore[no-untyped-def]
    from asrd.recognizer.funasr import FunASRRecognizer
    from asrd.recognizer.modeldir import resolve
    from asrd.transcribe import Pipeline

    model = settings.model
    print(f"loading model {model.name} ...", file=sys.stderr)
    recognizer = FunASRRecognizer(
        resolve(model.name, model.hub),
        device=model.device,
        threads=model.threads,
        precision=model.precision,
        patches=model.funasr_patches,
    )
    return Pipeline(settings, recognizer, overwrite=overwrite)


def _run_all(pipeline: Any, paths: list[Path]) -> list[str]:
    """Transcribe ``paths`` together (their speech is batched across files), one progress bar for
    all of them; prints each file's sidecars as it is done; returns the failures, one line each."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from asrd.output.sidecars import SidecarError
    from asrd.recognizer import ModelError
    from asrd.records import SAMPLE_RATE
    from asrd.transcribe import Failure
    from asrd.worker.audio import DecodeError, probe

    # Seconds per file; None while a file's length is unknown (a header that does not say, as in a
    # browser's WebM): the bar has no end (tqdm counts up) until decoding has found every length.
    totals = {p: None if (n := probe(p).duration) is None else n / SAMPLE_RATE for p in paths}
    done: dict[Path, float] = {}
    failures: list[str] = []

    def known_total() -> float | None:
        lengths = list(totals.values())
        return None if None in lengths else round(sum(t or 0.0 for t in lengths), 1)

    with tqdm(total=known_total(), unit="s", unit_scale=True, desc=f"{len(paths)} file(s)", file=sys.stderr) as bar, \
            logging_redirect_tqdm():
        def progress(path: Path, upto: int, total: int | None) -> None:
            done[path] = upto / SAMPLE_RATE
            if total is not None:
                totals[path] = total / SAMPLE_RATE
            bar.total = known_total()
            so_far = sum(done.values())
            bar.n = round(so_far if bar.total is None else min(bar.total, so_far), 1)
            bar.refresh()

        for outcome in pipeline.transcribe_many(paths, progress):
            if isinstance(outcome, Failure):
                err = outcome.error
                if isinstance(err, DecodeError | SidecarError | ModelError):
                    failures.append(str(err))
                elif isinstance(err, OSError):
                    failures.append(f"{outcome.source}: {err.strerror or err}")
                else:  # a model crash must not lose the other files' results
                    log.error("unexpected error on %s", outcome.source, exc_info=err)
                    failures.append(f"{outcome.source}: {type(err).__name__}: {err}")
                continue
            for sidecar in outcome.sidecars:
                tqdm.write(str(sidecar.path), file=sys.stdout)
    return failures


if __name__ == "__main__":
    sys.exit(main())
