"""Leaf constants shared by the watcher, the decoders and the writers (imports nothing of asrd)."""

from __future__ import annotations

from typing import Literal, get_args

#: File name extensions (lower case, no dot) of audio and video files worth trying to decode.
MEDIA_EXTENSIONS: frozenset[str] = frozenset(
    (
        *("wav", "wave", "bwf", "rf64", "w64", "aiff", "aif", "aifc", "caf", "au", "snd"),
        *("flac", "wv", "ape", "ogg", "oga", "opus", "spx", "mp3", "mp2", "mpga", "wma", "amr", "awb"),
        *("m4a", "m4b", "aac", "adts", "ac3", "eac3", "dts", "mka", "weba"),
        *("mp4", "m4v", "mov", "3gp", "3g2", "3ga", "mkv", "webm", "avi", "wmv", "asf", "flv", "f4v"),
        *("ts", "mts", "m2ts", "mpg", "mpeg", "vob"),
    )
)


#: The sidecar formats asrd writes; each is also the file name extension of its sidecars.
SidecarFormat = Literal["txt", "srt", "vtt", "json"]
SIDECAR_FORMATS: tuple[SidecarFormat, ...] = get_args(SidecarFormat)

TEMP_PREFIX = ".asrd-tmp-"  # the watcher ignores these; a crash may leave one behind
