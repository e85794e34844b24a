"""Random-weight model directories with the real SenseVoiceSmall architecture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch

from asrd.testing import artifacts, calibrate, vocab
from asrd.testing.vocab import SENSEVOICE_TAG_IDS as TAG_IDS

# FunASR's model classes build their submodules at run time (nn.Module attributes), so mypy
# sees Tensor | Module for every attribute: the builders treat a model as Any.
FunasrModel = Any

Size = Literal["tiny", "full"]

BPE_NAME = "chn_jpn_yue_eng_ko_spectok.bpe.model"
FILES = ["config.yaml", "model.pt", "am.mvn", BPE_NAME, "configuration.json"]

# "full" is the published SenseVoiceSmall encoder; "tiny" keeps its structure (a 560-d input
# block, SANM blocks, a second "tp" stack, the full 25055-way CTC layer) at toy width.
_ENCODER_DIMS: dict[str, dict[str, int]] = {
    "full": {"output_size": 512, "attention_heads": 4, "linear_units": 2048, "num_blocks": 50, "tp_blocks": 20},
    "tiny": {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 3, "tp_blocks": 1},
}
LFR_M, LFR_N, N_MELS = artifacts.LFR_M, artifacts.LFR_N, artifacts.N_MELS
INPUT_SIZE = N_MELS * LFR_M

_CONFIGURATION_JSON = {
    "framework": "pytorch",
    "task": "auto-speech-recognition",
    "model": {"type": "funasr"},
    "pipeline": {"type": "funasr-pipeline"},
    "model_name_in_hub": {"ms": "", "hf": ""},
    "file_path_metas": {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"bpemodel": BPE_NAME},
        "frontend_conf": {"cmvn_file": "am.mvn"},
    },
}


def sensevoice_config(size: Size = "tiny") -> dict[str, Any]:
    """The inference-relevant part of SenseVoiceSmall's config.yaml at the given size."""
    return {
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {
            **_ENCODER_DIMS[size],
            **artifacts.SANM_ENCODER,
        },
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": artifacts.wav_frontend_conf(cmvn_file=None),
        "specaug": "SpecAugLFR",
        "specaug_conf": artifacts.specaug_lfr_conf(),
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
        "normalize": None,
    }


def sensevoice_module(size: Size = "tiny", device: str | torch.device | None = None) -> torch.nn.Module:
    """Instantiate funasr's SenseVoiceSmall for ``size`` the way ``AutoModel`` does.

    Pass ``device="meta"`` to get the structure (e.g. to count parameters) without memory.
    """
    tables = artifacts.funasr_tables()
    config = sensevoice_config(size)
    conf = {**config["model_conf"], **config, "input_size": INPUT_SIZE}
    conf["vocab_size"] = vocab.SENSEVOICE_VOCAB_SIZE
    with torch.device(device or "cpu"):
        return tables.model_classes.get("SenseVoiceSmall")(**conf)


# Which tag the model prints at which of its four query positions, for each query it is given:
# (language query, text-norm query) are ids into SenseVoiceSmall.embed (its lid_dict and
# textnorm_dict; positions 1 and 2 always get ids 1 and 2). "auto" (0) is wired to <|en|>: a
# random model cannot tell languages apart, so it claims English.
_LANGUAGE_TAGS = {0: "<|en|>", 3: "<|zh|>", 4: "<|en|>", 7: "<|yue|>", 11: "<|ja|>", 12: "<|ko|>", 13: "<|nospeech|>"}
_FIXED_TAGS = {1: "<|NEUTRAL|>", 2: "<|Speech|>"}  # emotion, event
_TEXTNORM_TAGS = {14: "<|withitn|>", 15: "<|woitn|>"}
_CONTEXT_GAIN = 0.1  # attention output and FSMN memory taps, every layer
_RESIDUAL_GAIN = 0.2  # what each residual block adds (value projection, FFN output)
_TAG_GAIN, _TAG_COS = 1000.0, 0.9  # tag logit = gain * (cos(out, calibrated out) - threshold)
_EMIT_FRACTION = 0.35  # of 60 ms stand-in frames that emit a piece (1-7 per second on real audio)
_CALIBRATION_SECONDS = 40.0
_BLANK_GAIN = 4.0
_RARE_BIAS = -3.0  # pieces outside the trained part (single CJK/kana/Hangul fillers)
_NEVER_BIAS = -30.0  # <s>, </s>, reserved placeholders: never emitted


def _shape_encoder(model: FunasrModel) -> None:
    """Make every encoder output mostly a function of its own input frame.

    Random blocks at full strength scramble the stream until the four query positions (language,
    emotion, event, text-norm) look like speech frames; damping what each block mixes in keeps
    them apart, so the CTC layer can print real tags there. Shapes and compute are unchanged.
    """
    encoder = model.encoder
    d = encoder.output_size()
    with torch.no_grad():
        for layer in [*encoder.encoders0, *encoder.encoders, *encoder.tp_encoders]:
            attn = layer.self_attn
            attn.linear_out.weight.mul_(_CONTEXT_GAIN)
            attn.linear_out.bias.mul_(_CONTEXT_GAIN)
            attn.fsmn_block.weight.mul_(_CONTEXT_GAIN)
            if layer.in_size == layer.size:  # the first block has no residual: v is its output
                attn.linear_q_k_v.weight[2 * d :].mul_(_RESIDUAL_GAIN)
                attn.linear_q_k_v.bias[2 * d :].mul_(_RESIDUAL_GAIN)
            layer.feed_forward.w_2.weight.mul_(_RESIDUAL_GAIN)
            layer.feed_forward.w_2.bias.mul_(_RESIDUAL_GAIN)
        # "auto" asks the same question as "en" (see _QUERY_TAGS)
        model.embed.weight[0] = model.embed.weight[4]


def _query_outputs(model: FunasrModel, language_query: int, textnorm_query: int) -> torch.Tensor:
    """Encoder output at the four query positions when no audio follows."""
    queries = model.embed(torch.tensor([[language_query, 1, 2, textnorm_query]]))
    out, _ = model.encoder(queries, torch.tensor([4]))
    return out[0]


def _shape_ctc(model: FunasrModel) -> None:
    """Tags at the query positions, a sparse, varied stream of ordinary pieces elsewhere."""
    ctc = model.ctc.ctc_lo
    with torch.no_grad():
        features = calibrate.speech_like_features(_CALIBRATION_SECONDS, LFR_M, LFR_N)
        queries = model.embed(torch.tensor([[4, 1, 2, 15]]))
        speech = torch.cat((queries, features), dim=1)
        hidden, _ = model.encoder(speech, torch.tensor([speech.shape[1]]))
        hidden = hidden[0, 4:]

        ordinary = torch.arange(3, vocab.SPECIAL_REGION_START)
        logits = calibrate.whiten_rows(ctc, ordinary, hidden)
        rare = ordinary >= vocab.SENSEVOICE_TRAINED
        ctc.bias[ordinary[rare]] += _RARE_BIAS
        best = (logits + torch.where(rare, _RARE_BIAS, 0.0)).max(dim=1).values
        # Blank rides on one more random whitened direction at high gain, offset so it loses on
        # _EMIT_FRACTION of the stand-in frames. (A constant blank would hinge on the narrow
        # spread of `best` and flip between "every frame" and "none" from one input to another.)
        blank = _BLANK_GAIN * calibrate.whiten_rows(ctc, torch.tensor([0]), hidden)[:, 0]
        offset = torch.quantile(best - blank, 1.0 - _EMIT_FRACTION)
        ctc.weight[0] *= _BLANK_GAIN
        ctc.bias[0] = ctc.bias[0] * _BLANK_GAIN + offset

        never = torch.arange(vocab.SPECIAL_REGION_START, vocab.SENSEVOICE_VOCAB_SIZE)
        for ids in (torch.tensor([1, 2]), never):
            ctc.weight[ids] = 0.0
            ctc.bias[ids] = _NEVER_BIAS
        aims = [(lang, 15, 0, tag) for lang, tag in _LANGUAGE_TAGS.items()]
        aims += [(4, 15, pos, tag) for pos, tag in _FIXED_TAGS.items()]
        aims += [(4, norm, 3, tag) for norm, tag in _TEXTNORM_TAGS.items()]
        for lang, norm, position, tag in aims:
            out = _query_outputs(model, lang, norm)[position]
            ctc.weight[TAG_IDS[tag]] = _TAG_GAIN * out / out.norm() ** 2
            ctc.bias[TAG_IDS[tag]] = -_TAG_GAIN * _TAG_COS
        _check_tags(model, features[:, :50])


def _check_tags(model: FunasrModel, features: torch.Tensor) -> None:
    """Fail the build, rather than write a model that prints no or wrong tags."""
    for lang, lang_tag in _LANGUAGE_TAGS.items():
        for norm, norm_tag in _TEXTNORM_TAGS.items():
            queries = model.embed(torch.tensor([[lang, 1, 2, norm]]))
            speech = torch.cat((queries, features), dim=1)
            hidden, _ = model.encoder(speech, torch.tensor([speech.shape[1]]))
            got = model.ctc.ctc_lo(hidden[0, :4]).argmax(dim=1).tolist()
            want = [TAG_IDS[t] for t in (lang_tag, *_FIXED_TAGS.values(), norm_tag)]
            if got != want:
                raise RuntimeError(f"random SenseVoice build prints {got} instead of tags {want}")


def build_sensevoice(dest: Path, size: Size = "tiny", seed: int = 0) -> Path:
    """Write a SenseVoiceSmall model directory with random weights into ``dest`` and return it.

    The files are those of the published model (``config.yaml``, ``model.pt``, ``am.mvn``,
    the sentencepiece model, ``configuration.json``), so ``funasr.AutoModel(model=dest)`` loads
    it through the same code as a download. ``size="full"`` has the published dimensions
    (234.0 M parameters, ~893 MiB) and is what to time; ``"tiny"`` (0.47 M, ~2 MB) is for tests.
    Deterministic for a given ``seed``; a directory already holding this build is left alone.

    The weights are random but shaped so output looks like SenseVoice's: the four tags
    (language - "auto" gives <|en|> -, <|NEUTRAL|>, <|Speech|>, <|withitn|>/<|woitn|>) then a
    few made-up pieces per second of audio.
    """
    if size not in _ENCODER_DIMS:
        raise ValueError(f"size must be one of {sorted(_ENCODER_DIMS)}, not {size!r}")

    def build(out: Path) -> None:
        artifacts.write_text(out / "am.mvn", artifacts.am_mvn_text(LFR_M))
        artifacts.write_bytes(out / BPE_NAME, vocab.sensevoice_bpe_model())
        artifacts.write_yaml(out / "config.yaml", _HEADER.format(size=size, seed=seed), sensevoice_config(size))
        artifacts.write_text(out / "configuration.json", json.dumps(_CONFIGURATION_JSON, indent=2) + "\n")
        model = sensevoice_module(size)
        artifacts.randomize(model, seed)
        model.eval()
        _shape_encoder(model)
        _shape_ctc(model)
        artifacts.save_weights(out / "model.pt", model)

    stamp = {"model": "SenseVoiceSmall", "size": size, "seed": seed}
    return artifacts.build_once(Path(dest), stamp, FILES, build)


_HEADER = """SenseVoiceSmall architecture with RANDOM weights ({size}, seed {seed}), made by asrd.testing
for tests and benchmarks. It transcribes nothing: the text is made-up pieces."""
