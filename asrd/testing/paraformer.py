"""Random-weight model directories with the real (plain) Paraformer architecture.

Laid out like ModelScope's speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch
(``config.yaml``, ``model.pt``, ``am.mvn``, ``tokens.json``) at toy width: SANM encoder, CIF
predictor, SANM decoder, a character/word-piece vocabulary of CJK characters and Latin pieces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from asrd.testing import artifacts, calibrate, vocab

# FunASR's model classes build their submodules at run time (nn.Module attributes), so mypy
# sees Tensor | Module for every attribute: the builders treat a model as Any.
FunasrModel = Any

FILES = ["config.yaml", "model.pt", "am.mvn", "tokens.json"]
LFR_M, LFR_N, N_MELS = artifacts.LFR_M, artifacts.LFR_N, artifacts.N_MELS
INPUT_SIZE = N_MELS * LFR_M
_DIM = 32
_TOKENS_PER_SECOND = 4.0  # CIF fires this often on the speech stand-in (frames are 60 ms)
_CIF_SPREAD = 1.0  # std of the predictor's pre-sigmoid output, so token density varies
_CALIBRATION_SECONDS = 40.0
_NEVER_BIAS = -30.0

_HEADER = """Paraformer architecture with RANDOM weights (tiny, seed {seed}), made by asrd.testing
for tests. It transcribes nothing: the text is made-up characters and word pieces."""


def paraformer_config() -> dict[str, Any]:
    """config.yaml of the published Paraformer-large, with toy dimensions."""
    return {
        "model": "Paraformer",
        "model_conf": {
            "ctc_weight": 0.0,
            "lsm_weight": 0.1,
            "length_normalized_loss": True,
            "predictor_weight": 1.0,
            "predictor_bias": 1,
            "sampling_ratio": 0.75,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "output_size": _DIM,
            "attention_heads": 2,
            "linear_units": 2 * _DIM,
            "num_blocks": 3,
            **artifacts.SANM_ENCODER,
        },
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {
            "attention_heads": 2,
            "linear_units": 2 * _DIM,
            "num_blocks": 2,
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "self_attention_dropout_rate": 0.1,
            "src_attention_dropout_rate": 0.1,
            "att_layer_num": 2,
            "kernel_size": 11,
            "sanm_shfit": 0,
        },
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": _DIM, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
        "frontend": "WavFrontend",
        "frontend_conf": artifacts.wav_frontend_conf(),
        "specaug": "SpecAugLFR",
        "specaug_conf": artifacts.specaug_lfr_conf(),
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": vocab.PARAFORMER_UNK, "split_with_space": True},
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
        "normalize": None,
    }


def paraformer_module(vocab_size: int) -> FunasrModel:
    """Instantiate funasr's Paraformer for the toy config the way ``AutoModel`` does."""
    tables = artifacts.funasr_tables()
    config = paraformer_config()
    conf = {**config["model_conf"], **config, "input_size": INPUT_SIZE, "vocab_size": vocab_size}
    return tables.model_classes.get("Paraformer")(**conf)


def _shape_predictor(model: FunasrModel, encoded: torch.Tensor) -> None:
    """Aim the CIF predictor at ~_TOKENS_PER_SECOND on speech-like input.

    Random weights put its sigmoid anywhere: near 0 the model emits no token (and funasr
    returns no result at all), near 1 one per 60 ms frame.
    """
    predictor = model.predictor
    with torch.no_grad():
        context = predictor.pad(encoded.transpose(1, 2))
        hidden = torch.relu(predictor.cif_conv1d(context)).transpose(1, 2)
        raw = predictor.cif_output(hidden)[0, :, 0]
        scale = _CIF_SPREAD / raw.std()
        standard = (raw - raw.mean()) * scale
        # sigmoid(standard + offset) averages to the wanted tokens per frame; find offset by bisection
        wanted = _TOKENS_PER_SECOND * LFR_N * 10 / 1000
        low, high = -10.0, 10.0
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if torch.sigmoid(standard + mid).mean() < wanted else (low, mid)
        predictor.cif_output.weight *= scale
        predictor.cif_output.bias.copy_((predictor.cif_output.bias - raw.mean()) * scale + low)


def _shape_output(model: FunasrModel, encoded: torch.Tensor, vocab_size: int) -> None:
    """Spread the decoder's choices over the ordinary tokens; never emit the special ones."""
    lengths = torch.tensor([encoded.shape[1]])
    with torch.no_grad():
        embeds, token_num, _, _ = model.calc_predictor(encoded, lengths)
        count = token_num.round().long()
        hidden, _ = model.decoder(encoded, lengths, embeds[:, : int(count[0])], count, return_hidden=True)
        layer = model.decoder.output_layer
        ordinary = torch.arange(len(vocab.PARAFORMER_SPECIALS), vocab_size - 1)  # <unk> is last
        calibrate.whiten_rows(layer, ordinary, hidden[0])
        special = torch.tensor([*range(len(vocab.PARAFORMER_SPECIALS)), vocab_size - 1])
        layer.weight[special] = 0.0
        layer.bias[special] = _NEVER_BIAS


def build_paraformer(dest: Path, seed: int = 0) -> Path:
    """Write a tiny Paraformer model directory with random weights into ``dest`` and return it.

    ``funasr.AutoModel(model=dest)`` loads it like the downloaded model; ``generate(...,
    output_timestamp=True)`` gives ``timestamp`` [[start_ms, end_ms], ...] per token. The text
    is a few made-up CJK characters and Latin words per second of audio.
    Deterministic for a given ``seed``; a directory already holding this build is left alone.
    """

    def build(out: Path) -> None:
        tokens = vocab.paraformer_tokens()
        artifacts.write_text(out / "am.mvn", artifacts.am_mvn_text(LFR_M))
        artifacts.write_text(out / "tokens.json", json.dumps(tokens, ensure_ascii=False, indent=0) + "\n")
        artifacts.write_yaml(out / "config.yaml", _HEADER.format(seed=seed), paraformer_config())
        model = paraformer_module(len(tokens))
        artifacts.randomize(model, seed)
        model.eval()
        features = calibrate.speech_like_features(_CALIBRATION_SECONDS, LFR_M, LFR_N)
        with torch.no_grad():
            encoded, _ = model.encode(features, torch.tensor([features.shape[1]]))
        _shape_predictor(model, encoded)
        _shape_output(model, encoded, len(tokens))
        artifacts.save_weights(out / "model.pt", model)

    stamp = {"model": "Paraformer", "size": "tiny", "seed": seed}
    return artifacts.build_once(Path(dest), stamp, FILES, build)
