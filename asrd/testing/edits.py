"""A finished transcript whose sidecars asrd wrote as the daemon does (with its ownership marks), for the
editor's tests and demos: ``asrd.testing.library.finished`` writes plain files, which count as a person's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asrd.control.fingerprint import fingerprint
from asrd.control.jobs import Job, JobStore
from asrd.control.library import index_transcript
from asrd.output.cuerules import DEFAULT_RULES
from asrd.output.formats import render
from asrd.output.ownership import for_store
from asrd.output.sidecars import write_sidecars
from asrd.testing.library import transcript


def finished_owned(store: JobStore, source: Path, spans: Sequence[tuple[float, float, str]], *, now: float = 0.0,
                   formats: Sequence[str] = ("txt", "srt", "vtt", "json"), **kw: object) -> Job:
    """A done job for ``source`` (which must exist) with asrd's sidecars next to it and its cues indexed."""
    t = transcript(source, spans, **kw)  # type: ignore[arg-type]
    rendered = render(t, formats)
    paths = {fmt: source.with_suffix("." + fmt) for fmt in formats}
    written = write_sidecars(source, rendered, paths, overwrite=False, ownership=for_store(store))
    inbox = str(source.parent.resolve())
    job = store.offer(source, inbox, fingerprint(source), now)
    assert job is not None, f"{source} is already a job"
    store.claim(now + 1e9, 10**6)
    done = store.complete(job.id, now, [s.path for s in written])
    index_transcript(store, job.id, inbox, source, now, t, DEFAULT_RULES)
    return done
