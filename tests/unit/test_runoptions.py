"""Per-file options beside an upload: read back, applied over the inbox's, and a bad file named in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from asrd.config import OutputSettings
from asrd.control.runoptions import RunOptions, create_options, options_path, read_options, takes_hotwords
from asrd.recognizer import RecognizeOptions


def test_options_round_trip_and_override_only_what_they_name(tmp_path: Path) -> None:
    media = tmp_path / "memo.webm"
    create_options(media, RunOptions(language="ja", hotwords=("asrd",)))
    run = read_options(media)
    assert run == RunOptions(language="ja", hotwords=("asrd",))
    base = RecognizeOptions(language="zh", itn=True, hotwords=("x",))
    assert run.recognize(base) == RecognizeOptions(language="ja", itn=True, hotwords=("asrd",))
    assert run.output(OutputSettings(formats=("txt",))).formats == ("txt",)
    assert RunOptions(formats=("vtt",)).output(OutputSettings()).formats == ("vtt",)
    with pytest.raises(FileExistsError):  # never replaces an options file already there
        create_options(media, RunOptions(itn=False))


def test_a_bad_options_file_is_named_and_the_inbox_settings_used(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    media = tmp_path / "memo.webm"
    options_path(media).write_text('{"language": "klingon"}')
    with caplog.at_level(logging.WARNING):
        assert read_options(media) is None
    assert "memo.webm.asrd-options.json" in caplog.text
    assert read_options(tmp_path / "other.wav") is None


def test_hotword_models_are_told_apart_by_name() -> None:
    assert takes_hotwords("iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch")
    assert takes_hotwords("FunAudioLLM/Fun-ASR-Nano-2512")
    assert not takes_hotwords("iic/SenseVoiceSmall")


def test_the_dispatcher_sends_a_files_own_options_to_the_worker(tmp_path: Path) -> None:
    from asrd.config import load_settings
    from asrd.control.dispatch import Dispatcher
    from asrd.control.fingerprint import fingerprint
    from asrd.control.inboxviews import engine_spec, inbox_views
    from asrd.control.jobs_memory import MemoryJobStore
    from asrd.testing.scripted_worker import WorkerScript

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = load_settings(None, {"inbox": [{"path": str(inbox), "language": "zh"}],
                                    "daemon": {"state_dir": str(tmp_path)}})
    views = inbox_views(settings)
    store, script = MemoryJobStore(), WorkerScript()
    dispatcher = Dispatcher(store, views, engine_spec(settings, None), 300, spawn=script.spawn)
    for name, options in (("own.wav", RunOptions(language="en", itn=False)), ("plain.wav", None)):
        path = inbox.resolve() / name
        path.write_bytes(b"audio bytes")
        if options is not None:
            create_options(path, options)
        store.offer(path, next(iter(views)), fingerprint(path), 0.0)
    for _ in range(4):
        dispatcher.step(0.0)
    sent = {Path(t.path).name: t.options for w in script.workers for t in w.sent}
    assert (sent["own.wav"].language, sent["own.wav"].itn) == ("en", False)
    assert (sent["plain.wav"].language, sent["plain.wav"].itn) == ("zh", True)
