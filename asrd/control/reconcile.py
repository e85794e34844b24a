""""Where is my file": files an inbox holds that have no job, files the rules ignored, paused inboxes.

``Reconciler`` is a daemon-side job the dashboard asks for (never work done in a web request): it walks
every inbox a bounded number of files per loop turn, so the loop stays responsive on a library of
100,000 files, and keeps its request and its findings in the state directory (``reconcile.json``): a
scan cut short by a restart runs again at the next start, and the report outlives restarts.
``IgnoredFiles`` remembers the last files a watcher reported that the rules kept out, and why.
``PausedInboxes`` is the set of inboxes whose files are not started, kept in ``paused-inboxes.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("asrd.reconcile")

REPORT_NAME = "reconcile.json"
PAUSED_NAME = "paused-inboxes.json"
FILES_PER_STEP = 500  # files looked at per loop turn (a stat and one indexed lookup each)
MAX_LISTED = 1000  # files without a job kept in the report; the rest are only counted
IGNORED_KEPT = 200


@dataclass(frozen=True)
class Unqueued:
    """A file in an inbox with no job. ``inbox`` is the inbox key, ``relative`` the path inside it."""

    inbox: str
    relative: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Report:
    state: str  # "none" (never asked), "running", "done"
    started: float = 0.0
    finished: float | None = None
    scanned: int = 0
    missing: tuple[Unqueued, ...] = ()
    more: int = 0  # files without a job beyond MAX_LISTED

    def entry(self, index: int) -> Unqueued | None:
        return self.missing[index] if 0 <= index < len(self.missing) else None


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)  # readers never see half a file


def read_report(state_dir: Path | None) -> Report:
    if state_dir is None:
        return Report("none")
    try:
        data = json.loads((state_dir / REPORT_NAME).read_text(encoding="utf-8"))
        data["missing"] = tuple(Unqueued(**m) for m in data.get("missing", ()))
        return Report(**data)
    except FileNotFoundError:
        return Report("none")
    except (OSError, ValueError, TypeError) as err:
        log.warning("ignoring %s: %s", state_dir / REPORT_NAME, err)
        return Report("none")


class Reconciler:
    """Walks the inboxes for files without a job. ``walk(key)`` yields an inbox's accepted files;
    ``known(path)`` says whether the path has a job or is settling."""

    def __init__(self, state_dir: Path | None, walk: Callable[[str], Iterator[Path]],
                 roots: Callable[[], Mapping[str, Path]], known: Callable[[Path], bool]) -> None:
        self.state_dir = state_dir
        self._walk = walk
        self._roots = roots
        self._known = known
        self.report = read_report(state_dir)
        self._files: Iterator[tuple[str, Path]] | None = None
        self._found: list[Unqueued] = []
        self._more = 0
        self._scanned = 0

    @property
    def running(self) -> bool:
        return self.report.state == "running"

    def request(self, now: float) -> bool:
        """Start a scan (False if one is running already); durable at once."""
        if self._files is not None:
            return False
        self._files = self._all_files()
        self._found, self._more, self._scanned = [], 0, 0
        self.report = Report("running", started=now, missing=self.report.missing)
        self._save()
        log.info("looking for files in the inboxes that have no job")
        return True

    def resume(self, now: float) -> None:
        """At start: a scan the last run did not finish is started again."""
        if self.report.state == "running":
            self._files = None
            self.request(now)

    def step(self, now: float) -> None:
        if self._files is None:
            return
        for _ in range(FILES_PER_STEP):
            item = next(self._files, None)
            if item is None:
                self._files = None
                self.report = Report("done", self.report.started, now, self._scanned, tuple(self._found), self._more)
                self._save()
                log.info("%d file(s) in the inboxes have no job (%d looked at)", len(self._found) + self._more,
                         self._scanned)
                return
            key, path = item
            self._scanned += 1
            if self._known(path):
                continue
            if len(self._found) >= MAX_LISTED:
                self._more += 1
                continue
            try:
                st = path.stat(follow_symlinks=False)
            except OSError:
                continue
            self._found.append(Unqueued(key, path.relative_to(self._roots()[key]).as_posix(), st.st_size,
                                        st.st_mtime))

    def take(self, index: int) -> Unqueued | None:
        """Remove entry ``index`` from the report (it was queued) and return it."""
        entry = self.report.entry(index)
        if entry is not None:
            missing = self.report.missing[:index] + self.report.missing[index + 1:]
            self.report = Report(self.report.state, self.report.started, self.report.finished,
                                 self.report.scanned, missing, self.report.more)
            self._save()
        return entry

    def _all_files(self) -> Iterator[tuple[str, Path]]:
        for key in list(self._roots()):
            for path in self._walk(key):
                yield key, path

    def _save(self) -> None:
        if self.state_dir is None:
            return
        data = asdict(self.report)
        try:
            _write_json(self.state_dir / REPORT_NAME, data)
        except OSError as err:
            log.warning("cannot write %s: %s", self.state_dir / REPORT_NAME, err.strerror or err)


@dataclass(frozen=True)
class Ignored:
    """A file a watcher reported that the rules keep out."""

    inbox: str
    relative: str
    rule: str
    seen: float


@dataclass
class IgnoredFiles:
    """The last ``IGNORED_KEPT`` ignored paths (one entry per path, the newest last)."""

    kept: int = IGNORED_KEPT
    _items: OrderedDict[tuple[str, str], Ignored] = field(default_factory=OrderedDict)

    def note(self, item: Ignored) -> None:
        key = (item.inbox, item.relative)
        self._items.pop(key, None)
        self._items[key] = item
        while len(self._items) > self.kept:
            self._items.popitem(last=False)

    def recent(self) -> tuple[Ignored, ...]:
        return tuple(reversed(self._items.values()))


class PausedInboxes:
    """Inbox keys whose queued files wait; kept in the state directory so a restart keeps the pause."""

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / PAUSED_NAME if state_dir is not None else None
        self.keys: frozenset[str] = frozenset()
        if self.path is not None:
            try:
                self.keys = frozenset(str(k) for k in json.loads(self.path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                pass
            except (OSError, ValueError, TypeError) as err:
                log.warning("ignoring %s: %s", self.path, err)

    def set(self, key: str, paused: bool) -> bool:
        """Pause or resume one inbox; False when it already was. Raises OSError if it cannot be kept."""
        keys = self.keys | {key} if paused else self.keys - {key}
        if keys == self.keys:
            return False
        if self.path is not None:
            _write_json(self.path, sorted(keys))
        self.keys = keys
        return True
