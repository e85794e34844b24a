"""A model hub stand-in for tests: no hub is reachable here, so a folder plays one, slowly.

``ROOT/hub/<model id>/`` is what the "hub" offers; a download copies it into ``ROOT/cache/<model id>/``
in small pieces with a pause between them (``ROOT/pace.json``: ``chunk_bytes``, ``pause_seconds``),
reporting progress to the same ``DownloadMeter`` the real hubs' hooks feed. The model worker uses it
when ``EngineSpec.stand_in_hub`` is set, which only tests do.

``python -m asrd.testing.hub [--stand-in ROOT] [--record-imports FILE] -- ASRD-ARGS ...`` runs the asrd
command line with every hub id served from ROOT - in ``asrd model fetch|check`` and in the worker that
``asrd run`` spawns - and, with ``--record-imports``, appends to FILE the name of every hub client library
(modelscope, huggingface_hub) this process imports: the daemon must import none.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from asrd.recognizer import ModelError
from asrd.recognizer.modeldir import DownloadMeter

HUB_LIBRARIES = ("modelscope", "modelscope_hub", "huggingface_hub")


@contextmanager
def silent_proxy() -> Iterator[str]:
    """A proxy URL on 127.0.0.1 that accepts connections and never answers: the slow way for a hub to be down
    (FunASR's download hung for minutes on it). Everything it accepted is closed on exit."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


class StandInHub:
    key = "ms"  # hub ids and aliases as for ModelScope

    def __init__(self, root: Path) -> None:
        self.root = root
        pace = root / "pace.json"
        settings = json.loads(pace.read_text(encoding="utf-8")) if pace.is_file() else {}
        self.chunk_bytes = int(settings.get("chunk_bytes", 1 << 20))
        self.pause_seconds = float(settings.get("pause_seconds", 0.0))

    def cached(self, model_id: str) -> Path | None:
        path = self.root / "cache" / model_id
        return path if path.is_dir() else None

    def check_reachable(self, model_id: str) -> None:
        if not (self.root / "hub" / model_id).is_dir():
            raise ModelError(f"model {model_id!r} was not found on the stand-in hub ({self.root})")

    def download(self, model_id: str, meter: DownloadMeter | None) -> Path:
        source = self.root / "hub" / model_id
        target = self.root / "cache" / model_id
        partial = target.with_name(f".partial-{target.name}")
        shutil.rmtree(partial, ignore_errors=True)
        files = sorted(p for p in source.rglob("*") if p.is_file())
        for path in files:
            if meter is not None:
                meter.expect(path.stat().st_size)
            dest = partial / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb") as src, dest.open("wb") as out:
                while piece := src.read(self.chunk_bytes):
                    out.write(piece)
                    if meter is not None:
                        meter.add(len(piece))
                    time.sleep(self.pause_seconds)
        partial.rename(target)  # whole or not at all, as a hub's cache
        return target


def offer(root: Path, model_id: str, model_dir: Path, *, chunk_bytes: int, pause_seconds: float) -> None:
    """Put a model directory on the stand-in hub under ``model_id``, served at the given pace."""
    shutil.copytree(model_dir, root / "hub" / model_id)
    (root / "pace.json").write_text(json.dumps({"chunk_bytes": chunk_bytes, "pause_seconds": pause_seconds}))


class _ImportRecorder(importlib.abc.MetaPathFinder):
    def __init__(self, log: Path) -> None:
        self.log = log

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name.split(".")[0] in HUB_LIBRARIES:
            with self.log.open("a", encoding="utf-8") as f:
                f.write(name + "\n")
        return None  # the import itself goes on: the test reads the record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asrd.testing.hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stand-in", type=Path, metavar="ROOT", help="serve hub ids from this folder")
    parser.add_argument("--record-imports", type=Path, help="append hub library imports of this process here")
    parser.add_argument("asrd_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.record_imports is not None:
        sys.meta_path.insert(0, _ImportRecorder(args.record_imports))
    from asrd.control import daemon
    from asrd.recognizer import modeldir

    if args.stand_in is not None:
        root = args.stand_in.resolve()
        hub = StandInHub(root)
        real_resolve, real_fetch, real_spec = modeldir.resolve, modeldir.fetch, daemon.engine_spec
        modeldir.resolve = lambda name, _hub, **kw: real_resolve(name, hub, **kw)
        modeldir.fetch = lambda name, _hub, **kw: real_fetch(name, hub, **kw)
        daemon.engine_spec = lambda *a: replace(real_spec(*a), stand_in_hub=str(root))
    from asrd.cli import main as asrd_main

    rest = args.asrd_args[1:] if args.asrd_args[:1] == ["--"] else args.asrd_args
    return asrd_main(rest)


if __name__ == "__main__":
    sys.exit(main())
