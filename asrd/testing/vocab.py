"""Made-up vocabularies for the random-weight test models.

Nothing here comes from a real model: the Latin "words" are syllable salad and the CJK text is
characters picked by a fixed pseudo-random generator. What is real is the *layout*: SenseVoice's
sentencepiece model has the published size (25055) with its tags at the ids funasr's
``SenseVoiceSmall`` refers to, so id-based options such as ``ban_emo_unk`` behave as they do on
the real model.
"""

from __future__ import annotations

import io
import random
from typing import Any

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as _pb2

# Generated protobuf classes: no type information for their message types.
sp_pb2: Any = _pb2

SENSEVOICE_VOCAB_SIZE = 25055
"""Piece count of the published ``chn_jpn_yue_eng_ko_spectok.bpe.model``."""

# Ids that funasr's SenseVoiceSmall hard-codes (lid_int_dict, emo_dict, textnorm_int_dict), plus
# <|Speech|> (24993, seen in published label sequences). The rest of the tags sit in the same
# region; their exact real ids are unknown and nothing in funasr depends on them.
SENSEVOICE_TAG_IDS: dict[str, int] = {
    "<|zh|>": 24884,
    "<|en|>": 24885,
    "<|yue|>": 24888,
    "<|ja|>": 24892,
    "<|ko|>": 24896,
    "<|nospeech|>": 24992,
    "<|Speech|>": 24993,
    "<|BGM|>": 24994,
    "<|Applause|>": 24995,
    "<|Laughter|>": 24996,
    "<|Cry|>": 24997,
    "<|Sneeze|>": 24998,
    "<|Breath|>": 24999,
    "<|Cough|>": 25000,
    "<|HAPPY|>": 25001,
    "<|SAD|>": 25002,
    "<|ANGRY|>": 25003,
    "<|NEUTRAL|>": 25004,
    "<|FEARFUL|>": 25005,
    "<|DISGUSTED|>": 25006,
    "<|SURPRISED|>": 25007,
    "<|Event_UNK|>": 25008,
    "<|EMO_UNKNOWN|>": 25009,
    "<|Sing|>": 25010,
    "<|Speech_Noise|>": 25011,
    "<|GBG|>": 25012,
    "<|withitn|>": 25016,
    "<|woitn|>": 25017,
}
SPECIAL_REGION_START = 24884
"""First id of the tag region; ids from here on that are not tags are reserved placeholders."""
SENSEVOICE_TRAINED = 1000
"""Ids below this are <unk>, <s>, </s> and pieces trained on the made-up text."""

_TEXT_SEED = 20240707  # fixed: the vocabularies do not depend on the weight seed
_SYLLABLES = [c + v for c in "bdfklmnprstvwyz" for v in "aeiou"] + [
    *("an", "en", "in", "on", "un", "ar", "er", "or", "st", "th", "sh", "ch", "tr", "pl", "gr"),
]
_CJK_FIRST, _CJK_LAST = 0x4E00, 0x9FA5  # CJK unified ideographs (the range funasr calls Chinese)
_KANA = [chr(c) for c in range(0x3041, 0x3097)] + [chr(c) for c in range(0x30A1, 0x30FB)]
_HANGUL_FIRST = 0xAC00


def made_up_words(count: int, rng: random.Random) -> list[str]:
    """Distinct lowercase pseudo-words of 1-3 syllables."""
    words: dict[str, None] = {}
    while len(words) < count:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))] = None
    return list(words)


def cjk_characters(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct CJK ideographs, a fixed pseudo-random pick over the whole block."""
    picked = rng.sample(range(_CJK_FIRST, _CJK_LAST + 1), count)
    return [chr(c) for c in picked]


def _made_up_corpus(rng: random.Random) -> list[str]:
    words = made_up_words(400, rng)
    hanzi = cjk_characters(600, rng)
    lines = []
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(3, 10)):
            if rng.random() < 0.5:
                parts.append(rng.choice(words))
            else:  # Chinese is written without spaces: runs of 2-6 characters
                parts.append("".join(rng.choice(hanzi) for _ in range(rng.randint(2, 6))))
        lines.append(" ".join(parts))
    return lines


def _train_bpe(lines: list[str], vocab_size: int) -> Any:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        num_threads=1,  # one thread keeps merges, and so the file bytes, reproducible
        # Tags must encode to exactly one id each (SenseVoice reads label ids 0 and 3 as the
        # language and text-norm tags), so no "▁" may be put in front of the text; and every
        # piece must re-encode to itself (SenseVoice's timestamp code re-encodes pieces one by
        # one and indexes out of range otherwise), so a leading "▁" must not be stripped.
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    proto = sp_pb2.ModelProto()
    proto.ParseFromString(buffer.getvalue())
    return proto


def sensevoice_bpe_model() -> bytes:
    """A serialized sentencepiece BPE model with SenseVoiceSmall's size and tag ids.

    Id 0 is ``<unk>`` (SenseVoice's CTC blank), 1/2 are ``<s>``/``</s>``, then ~1000 pieces
    trained on made-up mixed Latin/CJK text, then single CJK, kana and Hangul characters up to
    the tag region, then the tags (user-defined pieces, matched whole when encoding).
    """
    rng = random.Random(_TEXT_SEED)
    proto = _train_bpe(_made_up_corpus(rng), SENSEVOICE_TRAINED)
    piece_type = sp_pb2.ModelProto.SentencePiece.Type
    seen = {p.piece for p in proto.pieces}
    lowest = min(p.score for p in proto.pieces)

    fillers = (
        [chr(c) for c in range(_CJK_FIRST, _CJK_LAST + 1)]
        + _KANA
        + [chr(c) for c in range(_HANGUL_FIRST, _HANGUL_FIRST + 11172)]
    )
    fill = (c for c in fillers if c not in seen)
    while len(proto.pieces) < SPECIAL_REGION_START:
        lowest -= 1.0
        proto.pieces.add(piece=next(fill), score=lowest, type=piece_type.NORMAL)

    by_id = {i: tag for tag, i in SENSEVOICE_TAG_IDS.items()}
    for i in range(SPECIAL_REGION_START, SENSEVOICE_VOCAB_SIZE):
        name = by_id.get(i, f"<|reserved_{i}|>")
        proto.pieces.add(piece=name, score=0.0, type=piece_type.USER_DEFINED)
    proto.trainer_spec.vocab_size = len(proto.pieces)
    return proto.SerializeToString()


PARAFORMER_SPECIALS = ("<blank>", "<s>", "</s>")
PARAFORMER_UNK = "<unk>"


def paraformer_tokens(n_hanzi: int = 300, n_words: int = 120) -> list[str]:
    """A token list laid out like Paraformer's ``tokens.json``.

    ``<blank> <s> </s>`` first and ``<unk>`` last as in the published vocab8404 list; in between
    CJK characters and lowercase Latin pieces, where ``@@`` marks a piece that continues into
    the next one (funasr's ``sentence_postprocess`` joins those into words).
    """
    rng = random.Random(_TEXT_SEED + 1)
    hanzi = cjk_characters(n_hanzi, rng)
    pieces: list[str] = []
    for word in made_up_words(n_words, rng):
        pieces.append(word if rng.random() < 0.6 else word + "@@")
    return [*PARAFORMER_SPECIALS, *hanzi, *pieces, PARAFORMER_UNK]
