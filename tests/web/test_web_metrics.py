"""/metrics on the dashboard's server: Prometheus text, parsed by prometheus_client's own parser, behind the guard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from asrd.control.jobs import JobState, Outcome
from asrd.control.metrics import Metrics
from asrd.web.security import Policy


def test_metrics_route_serves_prometheus_text(make_client: Callable[..., Any], tmp_path: Path) -> None:
    client = make_client()
    assert client.get("/metrics").status_code == 404  # a daemon without metrics
    metrics = Metrics(None)
    metrics.file_ended(Outcome(Path("/in/a.wav"), "/in", JobState.DONE, 0.0, 100.0), 5.0)
    client.app.state.metrics = metrics
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    rtf = {s.name: s.value for s in families["asrd_file_rtf"].samples if not s.labels.get("le")}
    assert rtf["asrd_file_rtf_count"] == 1 and rtf["asrd_file_rtf_sum"] == 0.05
    assert not list(tmp_path.iterdir())  # no textfile_dir: nothing written


def test_metrics_need_the_token_like_every_page(make_client: Callable[..., Any], tmp_path: Path) -> None:
    client = make_client(Policy("token", frozenset(), token="t0ken"))
    client.app.state.metrics = Metrics(None)
    assert client.get("/metrics").status_code in (401, 403)
    assert client.get("/metrics", headers={"Authorization": "Bearer t0ken"}).status_code == 200


def test_batch_sizes_are_a_histogram_on_metrics(make_client: Callable[..., Any]) -> None:
    """The workers' batch sizes (carried in Done, summed by the pool) as asrd_batch_size, counted once each."""
    metrics = Metrics(None)
    dispatcher = SimpleNamespace(model_loaded=True, cold_starts=0, energy_uj={}, batch_sizes={1: 2, 3: 1})
    notifier = SimpleNamespace(sent=0, pending=lambda: 0)
    metrics.update({}, dispatcher, notifier)  # type: ignore[arg-type]
    dispatcher.batch_sizes = {1: 2, 3: 1, 8: 1}
    metrics.update({}, dispatcher, notifier)  # type: ignore[arg-type]
    client = make_client()
    client.app.state.metrics = metrics
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    got = {(s.name, s.labels.get("le")): s.value for s in families["asrd_batch_size"].samples}
    assert families["asrd_batch_size"].type == "histogram"
    assert got[("asrd_batch_size_count", None)] == 4 and got[("asrd_batch_size_sum", None)] == 13
    assert got[("asrd_batch_size_bucket", "1.0")] == 2 and got[("asrd_batch_size_bucket", "4.0")] == 3
