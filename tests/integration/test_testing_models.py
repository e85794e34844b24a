"""asrd.testing: random-weight model directories load and run through funasr like real ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from asrd.testing import artifacts, build_paraformer, build_sensevoice
from asrd.testing.__main__ import main
from asrd.testing.sensevoice import BPE_NAME, sensevoice_module
from asrd.testing.vocab import SENSEVOICE_TAG_IDS, SENSEVOICE_VOCAB_SIZE

TAGS = re.compile(r"<\|[^|]*\|>")


def load(model_dir: Path) -> Any:
    from funasr import AutoModel

    # dither off: FunASR dithers features by default, which makes every run differ
    return AutoModel(
        model=str(model_dir),
        disable_update=True,
        device="cpu",
        ncpu=2,
        disable_pbar=True,
        frontend_conf={"dither": 0.0},
    )


@pytest.fixture(scope="module")
def jfk(shared_dir: Path) -> np.ndarray:
    samples, rate = sf.read(shared_dir / "audio/ggerganov__whisper.cpp/jfk.wav", dtype="float32")
    assert rate == 16000
    return samples


@pytest.fixture(scope="module")
def sensevoice(tiny_sensevoice_dir: Path) -> Any:
    return load(tiny_sensevoice_dir)


@pytest.fixture(scope="module")
def paraformer(tiny_paraformer_dir: Path) -> Any:
    return load(tiny_paraformer_dir)


def test_sensevoice_dir_has_the_published_files(tiny_sensevoice_dir: Path) -> None:
    names = {p.name for p in tiny_sensevoice_dir.iterdir() if not p.name.startswith(".")}
    assert names == {"config.yaml", "model.pt", "am.mvn", BPE_NAME, "configuration.json"}
    metas = json.loads((tiny_sensevoice_dir / "configuration.json").read_text())["file_path_metas"]
    assert metas["tokenizer_conf"]["bpemodel"] == BPE_NAME
    assert metas["frontend_conf"]["cmvn_file"] == "am.mvn"


def test_am_mvn_matches_the_560_dim_frontend(tiny_sensevoice_dir: Path) -> None:
    from funasr.frontends.wav_frontend import load_cmvn

    cmvn = load_cmvn(str(tiny_sensevoice_dir / "am.mvn"))
    assert tuple(cmvn.shape) == (2, 560)
    assert (cmvn[0] < 0).all() and (cmvn[1] > 0).all()  # minus the mean, 1/std


def test_tokenizer_has_sensevoice_layout(tiny_sensevoice_dir: Path) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tiny_sensevoice_dir / BPE_NAME))
    assert sp.get_piece_size() == SENSEVOICE_VOCAB_SIZE
    assert sp.id_to_piece(0) == "<unk>"  # SenseVoice's CTC blank
    for tag, expected in SENSEVOICE_TAG_IDS.items():
        assert sp.encode_as_ids(tag) == [expected]
    # funasr's timestamp code re-encodes decoded pieces one by one: each must map back to itself
    assert all(sp.encode_as_ids(sp.id_to_piece(i)) == [i] for i in range(3, 24884))


def test_sensevoice_loads_weights_and_transcribes(sensevoice: Any, tiny_sensevoice_dir: Path, jfk: np.ndarray) -> None:
    saved = torch.load(tiny_sensevoice_dir / "model.pt")
    loaded = sensevoice.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)  # not funasr's silent random init

    [result] = sensevoice.generate(input=jfk)
    assert result["text"].startswith("<|en|><|NEUTRAL|><|Speech|><|woitn|>")
    assert len(TAGS.sub("", result["text"]).strip()) > 5
    # deterministic with dither off (the "key" of an array input is random per call)
    assert sensevoice.generate(input=jfk)[0]["text"] == result["text"]


def test_sensevoice_tags_follow_language_and_itn(sensevoice: Any, jfk: np.ndarray) -> None:
    [result] = sensevoice.generate(input=jfk, language="zh", use_itn=True)
    assert TAGS.findall(result["text"]) == ["<|zh|>", "<|NEUTRAL|>", "<|Speech|>", "<|withitn|>"]
    [result] = sensevoice.generate(input=jfk, language="ja", ban_emo_unk=True)
    assert result["text"].startswith("<|ja|>")


def test_sensevoice_word_timestamps(sensevoice: Any, jfk: np.ndarray) -> None:
    [result] = sensevoice.generate(input=jfk, output_timestamp=True)
    spans, words = result["timestamp"], result["words"]
    assert len(spans) == len(words) > 3
    assert all(0 <= start < end <= 11_000 for start, end in spans)


def test_paraformer_gives_token_timestamps(paraformer: Any, tiny_paraformer_dir: Path, jfk: np.ndarray) -> None:
    names = {p.name for p in tiny_paraformer_dir.iterdir() if not p.name.startswith(".")}
    assert names == {"config.yaml", "model.pt", "am.mvn", "tokens.json"}

    [result] = paraformer.generate(input=jfk, output_timestamp=True)
    tokens, spans = result["text"].split(" "), result["timestamp"]
    assert len(tokens) == len(spans)
    assert 11 <= len(spans) <= 88  # 1 to 8 tokens per second
    # the last token may end up to one 60 ms frame past the audio (funasr counts a tail frame)
    assert all(0 <= start < end <= 11_060 for start, end in spans)
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)
    assert any(re.search(r"[\u4e00-\u9fff]", t) for t in tokens)
    assert any(t.isascii() and t.isalpha() for t in tokens)


def _files(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir())}


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_same_files_whatever_the_process_state(
    threads: int, tmp_path: Path, tiny_sensevoice_dir: Path, tiny_paraformer_dir: Path
) -> None:
    # A recognizer sets the process's torch thread count (to 1 in most tests); the session fixtures may
    # have been built before or after that. The calibration's matmuls round differently per thread count.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        again_sv = build_sensevoice(tmp_path / "sv0", "tiny", seed=0)
        other_sv = build_sensevoice(tmp_path / "sv1", "tiny", seed=1)
        again_pf = build_paraformer(tmp_path / "pf0", seed=0)
        assert torch.get_num_threads() == threads  # the caller's setting is given back
    finally:
        torch.set_num_threads(before)
    assert _files(again_sv) == _files(tiny_sensevoice_dir)
    assert _files(again_pf) == _files(tiny_paraformer_dir)
    assert (other_sv / "model.pt").read_bytes() != (tiny_sensevoice_dir / "model.pt").read_bytes()


def test_other_rounding_changes_weights_only_within_float_tolerance(
    tmp_path: Path, tiny_paraformer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a build on another CPU may differ in: another CPU's kernels round differently, as does a
    matmul split over more threads, which this uses as the stand-in."""
    monkeypatch.setattr(artifacts, "BUILD_THREADS", 2)
    other = _files(build_paraformer(tmp_path / "pf", seed=0))
    same = _files(tiny_paraformer_dir)
    assert {k: v for k, v in other.items() if k != "model.pt"} == {k: v for k, v in same.items() if k != "model.pt"}
    got, want = torch.load(tmp_path / "pf" / "model.pt"), torch.load(tiny_paraformer_dir / "model.pt")
    assert got.keys() == want.keys()
    for name in want:
        assert (got[name].shape, got[name].dtype) == (want[name].shape, want[name].dtype), name
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)


def test_a_finished_build_is_reused_and_an_incomplete_one_redone(tmp_path: Path) -> None:
    dest = build_paraformer(tmp_path / "pf")
    before = (dest / "model.pt").stat().st_mtime_ns
    assert build_paraformer(dest) == dest
    assert (dest / "model.pt").stat().st_mtime_ns == before

    (dest / "am.mvn").unlink()
    build_paraformer(dest)
    assert (dest / "am.mvn").is_file()


def test_full_size_is_the_published_sensevoice_small() -> None:
    model = sensevoice_module("full", device="meta")  # structure only: no 900 MB to allocate
    params = sum(p.numel() for p in model.parameters())
    assert round(params / 1e6, 1) == 234.0
    assert model.ctc.ctc_lo.out_features == SENSEVOICE_VOCAB_SIZE
    assert len(model.encoder.encoders) + len(model.encoder.encoders0) == 50
    assert len(model.encoder.tp_encoders) == 20


def test_cli_prints_the_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "paraformer-tiny", str(tmp_path / "pf")]) == 0
    assert capsys.readouterr().out == f"{(tmp_path / 'pf').resolve()}\n"
    assert (tmp_path / "pf" / "model.pt").is_file()
