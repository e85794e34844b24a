"""The process boundary: the daemon side never imports the model, the decoders or worker internals.

The model lives only in the spawned worker (DESIGN.md). Lazy imports keep it so today; these tests make
the rule fail loudly the moment someone imports torch or a worker module into the daemon side, whether
at module level or inside a function that runs later.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "asrd"

HEAVY = ("torch", "funasr", "numpy", "av", "soundfile", "soxr", "webrtcvad", "ray", "pynvml")
"""Third-party modules that belong to the worker: the model, audio decoding, resampling, VAD, clusters,
and NVML (an open NVML handle keeps an idle GPU awake)."""

DAEMON_MAY_IMPORT = (
    "asrd",  # the package itself (its version)
    "asrd.config",
    "asrd.config.sources",  # where each setting came from (the dashboard's System page): pydantic only
    "asrd.records",
    "asrd.media",
    "asrd.logs",
    "asrd.output",  # and everything under it
    "asrd.worker.protocol",
    "asrd.worker.handle",
    "asrd.cluster.handle",  # the Ray bridge's process handle: Ray is imported only in the spawned bridge
    "asrd.control",  # and everything under it
    "asrd.energy",  # and everything under it: energy records, grid intensity, reports (the meters are the worker's)
    "asrd.web",  # the dashboard: a thread in the daemon process, imported only when [web] is enabled
    "asrd.recognizer",  # the package's __init__ only: the recognizer interface
    "asrd.recognizer.modeldir",  # torch-free checks of a local model directory, before READY
)
_WHOLE_PACKAGES = ("asrd.output", "asrd.control", "asrd.web", "asrd.energy")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.Module, package: str) -> list[tuple[int, str]]:
    """Every module a module of ``package`` imports, anywhere in it (inside functions too), as absolute
    dotted names with their line, except under ``if TYPE_CHECKING:`` (never run). ``from x import y``
    gives ``x.y`` as well, since ``y`` may be a submodule."""
    skipped = _type_checking_lines(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _is_heavy(name: str) -> bool:
    return name.split(".")[0] in HEAVY


def _daemon_may_import(name: str, module_names: set[str]) -> bool:
    if not name.startswith("asrd.") and name != "asrd":
        return not _is_heavy(name)
    if name.startswith(tuple(f"{p}." for p in _WHOLE_PACKAGES)):
        return True
    if name in DAEMON_MAY_IMPORT:
        return True
    # ``from asrd.recognizer import Recognizer`` names an attribute, not a module: allowed when the module
    # part is allowed and the name is not a module of its own.
    parent = name.rpartition(".")[0]
    return name not in module_names and parent in DAEMON_MAY_IMPORT


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _all_module_names() -> set[str]:
    return {_module_name(p) for p in PACKAGE.rglob("*.py")}


def violations(source: str, module: str, *, output_side: bool = False) -> list[str]:
    """What ``source``, the text of module ``module`` (``asrd.control.jobs``), imports against the rule."""
    package = module.rpartition(".")[0]
    module_names = _all_module_names()
    return [
        f"{module}:{line} imports {name}"
        for line, name in imported_names(ast.parse(source), package)
        if not _daemon_may_import(name, module_names) or (output_side and _is_heavy(name))
    ]


def _violations_in(folder: str, **kwargs: bool) -> list[str]:
    paths = _modules(folder)
    assert len(paths) > 3  # the walk found the folder's modules
    wrong = []
    for path in paths:
        name = _module_name(path)
        module = f"{name}.__init__" if path.name == "__init__.py" else name  # a package resolves from itself
        wrong += violations(path.read_text(encoding="utf-8"), module, **kwargs)
    return wrong


def test_daemon_side_imports_only_what_the_daemon_may_load() -> None:
    assert _violations_in("control") == []


def test_dashboard_imports_only_what_the_daemon_may_load() -> None:
    assert _violations_in("web") == []


def test_output_writers_import_no_audio_or_model_library() -> None:
    assert _violations_in("output", output_side=True) == []


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import numpy as np\n", "numpy"),
        ("def later():\n    import torch\n", "torch"),
        ("from ..worker import engine\n", "asrd.worker.engine"),
        ("from asrd.recognizer.funasr import FunASRRecognizer\n", "asrd.recognizer.funasr"),
        ("from av.audio import frame\n", "av.audio"),
        ("import asrd.testing.inline_worker\n", "asrd.testing.inline_worker"),
    ],
)
def test_the_walk_catches_each_kind_of_import(source: str, bad: str) -> None:
    assert any(v.endswith(f"imports {bad}") for v in violations(source, "asrd.control.probe"))


def test_the_walk_allows_the_interfaces_and_annotation_only_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import jobs\n"
        "from ..worker.protocol import EngineSpec\n"
        "from asrd.recognizer import Recognizer\n"
        "from asrd.output.sidecars import write\n"
        "if TYPE_CHECKING:\n    import numpy as np\n"
    )
    assert violations(source, "asrd.control.probe") == []


def test_importing_the_daemon_loads_no_model_or_audio_library() -> None:
    """The run-time side of the rule, in a fresh interpreter: what the daemon process has loaded after
    importing its entry points (transitive imports included)."""
    heavy = ("torch", "funasr", "numpy", "av", "soundfile", "ray")
    code = (
        "import sys, asrd.cli, asrd.control.daemon, asrd.control.status, asrd.cluster.handle; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "", f"imported in the daemon process: {run.stdout.strip()}"
