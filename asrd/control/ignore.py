"""Which names in an inbox are media worth transcribing, and which are temp files and litter.

Everything here is a pure function of the name (and the path relative to the inbox): no I/O, so the
watcher's events, the startup scan and the periodic rescan all make the same decision.

Temp names matter most: sync tools and browsers write under a temporary name and rename when done
(rsync ``.name.XXXXXX``, Syncthing ``.syncthing.name.tmp``, Chrome ``name.crdownload``...). Those
are ignored silently; the final name is seen when the rename lands. NAS and desktop litter
(``._*`` AppleDouble files, ``@eaDir`` Synology thumbnails...) is ignored the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import PurePath

from asrd.media import MEDIA_EXTENSIONS, SIDECAR_FORMATS, TEMP_PREFIX

__all__ = ["SIDECAR_EXTENSIONS", "IgnoreRules", "is_litter"]

#: Our own outputs: never media, even when ``include`` would match them (no transcribing transcripts).
SIDECAR_EXTENSIONS: frozenset[str] = frozenset(SIDECAR_FORMATS)

# Lower-case globs on the file name.
_LITTER_FILES = (
    ".syncthing.*.tmp",  # Syncthing writes here, then renames
    "~syncthing~*",  # Syncthing on Windows
    "*.part",  # Firefox, curl/wget -c, Nextcloud's name.ocTransferId<digits>.part
    "*.partial",  # rclone name.XXXXXX.partial
    "*.filepart",  # WinSCP
    "*.crdownload",  # Chrome, Edge
    "*.download",  # Safari (usually a bundle folder, see _LITTER_DIRS)
    "*.tmp",
    "*.octransferid*.part",
    "*.!qb",  # qBittorrent incomplete files
    "*.!ut",  # uTorrent
    "*.!sync",  # Resilio Sync
    "._*",  # macOS AppleDouble metadata on non-HFS shares
    ".ds_store",
    "thumbs.db",
    "desktop.ini",
    "~$*",  # Office lock files
    TEMP_PREFIX.lower() + "*",  # our own sidecar temp files
)
_TEMP_GLOBS = 12  # the first 12 globs above are temporary names (written, then renamed); the rest is litter
# rsync's temp file: "." + name + "." + six mkstemp characters (rsync receiver.c get_tmpname()).
_RSYNC_TEMP = re.compile(r"^\..+\.[A-Za-z0-9]{6}$")

# Lower-case globs on a folder name; any folder starting with "." is skipped as well.
_LITTER_DIRS = (
    "@eadir",  # Synology thumbnails and metadata
    "#recycle",  # Synology recycle bin
    "#snapshot",  # Synology snapshots
    "@recycle",  # QNAP recycle bin
    "@recently-snapshot",  # QNAP snapshots
    "__macosx",  # resource forks from zip files made on macOS
    "$recycle.bin",  # Windows
    "system volume information",
    "lost+found",
    "*.download",  # Safari's download bundle
)


def is_litter(name: str) -> bool:
    """True for temp files and OS/NAS litter, whatever the include patterns say."""
    lowered = name.lower()
    return any(fnmatchcase(lowered, pattern) for pattern in _LITTER_FILES) or bool(_RSYNC_TEMP.match(name))


class IgnoreRules:
    """Decide which files of an inbox become jobs.

    ``include``: globs on the file name (or the relative path); empty means any name whose extension
    is in ``MEDIA_EXTENSIONS``. ``exclude``: globs on the name or the path relative to the inbox (and,
    for pruning, on folder names). All matching is case-insensitive: phones write ``.M4A`` and NAS
    shares are often case-insensitive anyway.
    """

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self._include = tuple(pattern.lower() for pattern in include)
        self._exclude = tuple(pattern.lower() for pattern in exclude)

    def __repr__(self) -> str:
        return f"IgnoreRules(include={self._include!r}, exclude={self._exclude!r})"

    def skip_dir(self, name: str) -> bool:
        """True if a folder with this name (and everything under it) is never looked into."""
        if name.startswith("."):  # .git, .stversions, .stfolder, .Trashes, .Trash-1000, app caches
            return True
        lowered = name.lower()
        return any(fnmatchcase(lowered, pattern) for pattern in (*_LITTER_DIRS, *self._exclude))

    def accepts(self, relative: PurePath) -> bool:
        """True if the file at this path (relative to the inbox root) should be transcribed."""
        return self.why_not(relative) is None

    def why_not(self, relative: PurePath) -> str | None:
        """The rule that keeps this file out (for "where is my file"), or None when it is accepted."""
        parts = relative.parts
        if not parts or relative.is_absolute() or ".." in parts:
            return "outside the inbox"
        name = parts[-1]
        for part in parts[:-1]:
            if self.skip_dir(part):
                return f"in a skipped folder ({part}: hidden, NAS litter or an exclude glob)"
        lowered_name = name.lower()
        if is_litter(name):
            temp = _RSYNC_TEMP.match(name) or any(
                fnmatchcase(lowered_name, p) for p in _LITTER_FILES[:_TEMP_GLOBS]
            )
            return "temporary name (a download or sync still writing)" if temp else "litter (OS or NAS metadata)"
        extension = lowered_name.rpartition(".")[2] if "." in lowered_name else ""
        if extension in SIDECAR_EXTENSIONS:
            return "a transcript or subtitle file (asrd's output format)"
        lowered_path = relative.as_posix().lower()
        candidates = (lowered_name, lowered_path)
        for pattern in self._exclude:
            if any(fnmatchcase(text, pattern) for text in candidates):
                return f"exclude glob {pattern!r}"
        if not self._include:
            return None if extension in MEDIA_EXTENSIONS else f"not a media extension (.{extension or '?'})"
        if any(fnmatchcase(text, pattern) for pattern in self._include for text in candidates):
            return None
        return "matches no include glob"
