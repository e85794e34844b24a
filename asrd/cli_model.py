"""``asrd`` commands that load the model in this process: transcribe (with a progress bar) and model
fetch / check (``asrd.cli`` parses the command line and calls these)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from asrd.cli import settings_from
from asrd.config import Settings

log = logging.getLogger("asrd")


def model(args: argparse.Namespace) -> int:
    from asrd.recognizer import ModelError
    from asrd.recognizer.modeldir import fetch, resolve

    overrides = {"model": {"name": args.model} if args.model else {}}
    settings = settings_from(args.config, overrides)
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


def transcribe(args: argparse.Namespace) -> int:
    from asrd.recognizer import ModelError
    from asrd.worker.audio import DecodeError, probe

    overrides: dict[str, dict[str, Any]] = {
        "model": {k: v for k, v in (("name", args.model), ("device", args.device)) if v},
        "output": {k: v for k, v in (("formats", args.format), ("output_dir", args.output_dir)) if v},
        "transcribe": {"language": args.language} if args.language else {},
    }
    settings = settings_from(args.config, overrides)
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
