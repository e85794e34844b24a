"""``python -m asrd.testing build {sensevoice-tiny|sensevoice-full|paraformer-tiny} DEST``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from asrd.testing import build_paraformer, build_sensevoice

BUILDERS: dict[str, Callable[[Path, int], Path]] = {
    "sensevoice-tiny": lambda dest, seed: build_sensevoice(dest, "tiny", seed),
    "sensevoice-full": lambda dest, seed: build_sensevoice(dest, "full", seed),
    "paraformer-tiny": lambda dest, seed: build_paraformer(dest, seed),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asrd.testing",
        description="Build a FunASR model directory with random weights (for tests and trying asrd offline).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write a model directory and print its path")
    build.add_argument("model", choices=sorted(BUILDERS))
    build.add_argument("dest", type=Path, help="directory to create (reused if it already holds this build)")
    build.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = parser.parse_args(argv)

    path = BUILDERS[args.model](args.dest, args.seed)
    print(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
