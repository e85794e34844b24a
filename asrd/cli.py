"""The ``asrd`` command line: the parser, and the commands that only read (status, energy, check-config).

The others live by what they do: ``cli_jobs`` (the job database and the running daemon), ``cli_model`` (the
model in this process). They are imported when their command runs.
"""

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
        if args.command == "run":
            from asrd.control.driver import run

            return run(args.config, args.folders)
        if args.command == "status":
            return _status(args)
        if args.command == "energy":
            return _energy(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "bench":
            from asrd.bench import main as bench

            return bench(args)
        if args.command in ("transcribe", "model"):  # the commands that load the model here
            from asrd import cli_model

            return cli_model.transcribe(args) if args.command == "transcribe" else cli_model.model(args)
        from asrd import cli_jobs  # the commands on the job database and the daemon

        commands = {"retry": cli_jobs.retry, "rerun": cli_jobs.rerun, "report": cli_jobs.report,
                    "plan": cli_jobs.plan, "run-now": cli_jobs.run_now, "notify": cli_jobs.notify}
        if args.command in commands:
            return commands[args.command](args)
    except ConfigError as err:
        print(f"asrd: invalid configuration:\n{err}", file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130
    return 2


def settings_from(config: Path | None, overrides: dict[str, dict[str, Any]]) -> Settings:
    return load_settings(find_config(config), {k: v for k, v in overrides.items() if v})


def _energy(args: argparse.Namespace) -> int:
    import time

    from asrd.control.statedir import DB_NAME
    from asrd.energy.command import energy_report, parse_since

    settings = settings_from(args.config, {})
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

    from asrd.control.status import exit_code, render, report

    settings = settings_from(args.config, {})
    doc = report(settings.daemon.state_dir, settings.web)
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    return exit_code(doc)


if __name__ == "__main__":
    sys.exit(main())
