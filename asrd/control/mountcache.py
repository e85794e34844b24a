"""How long a mount may hide a file's growth: its attribute cache, read from ``/proc/self/mountinfo``.

A network or FUSE mount answers stat() from a cache for a while, so a file still being written on
the server looks unchanged here for that long. A settle time shorter than the cache can call a
growing file complete; the daemon warns at start (``cache_warning``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_OCTAL = re.compile(r"\\([0-7]{3})")
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    options: dict[str, str]  # per-mount and superblock options together; flags map to ""


def parse(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:] or len(fields) < 10:
            continue
        dash = fields.index("-", 6)
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        options: dict[str, str] = {}
        for option in (*fields[5].split(","), *fields[dash + 3].split(",")):
            key, _, value = option.partition("=")
            options[key] = value
        mounts.append(Mount(point, fields[dash + 1], options))
    return mounts


def mount_of(path: Path | str, mountinfo: str | None = None) -> Mount | None:
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", "rb") as f:
                mountinfo = os.fsdecode(f.read())
        except OSError:
            return None  # macOS and the BSDs: no /proc; no warning
    resolved = os.path.realpath(path)
    best: Mount | None = None
    for mount in parse(mountinfo):
        inside = mount.point == "/" or resolved == mount.point or resolved.startswith(mount.point.rstrip("/") + "/")
        if inside and (best is None or len(mount.point) >= len(best.point)):
            best = mount
    return best


def _seconds(options: dict[str, str], *keys: str) -> float | None:
    for key in keys:
        match = _SECONDS.match(options.get(key, ""))
        if match:
            return float(match.group(1))
    return None


def attribute_cache_seconds(mount: Mount) -> float:
    """Longest time this mount may report stale size/mtime (0 for local disks and uncached mounts)."""
    opts, fstype = mount.options, mount.fstype
    if fstype == "fuse.sshfs":
        # sshfs caches stat results for 20 s by default (cache_timeout); its own options are not
        # always in mountinfo, so 20 s unless a visible option says otherwise.
        if opts.get("cache") == "no" or opts.get("dir_cache") == "no":
            return 0.0
        found = _seconds(opts, "cache_stat_timeout", "cache_timeout")
        return 20.0 if found is None else found
    if fstype == "fuse.rclone":
        # rclone mount: --attr-timeout (1 s by default) bounds stale sizes; a file written on the
        # remote appears only after --dir-cache-time (5 min) unless the remote supports polling.
        return 1.0
    if fstype in ("nfs", "nfs4"):
        if "noac" in opts:
            return 0.0
        found = _seconds(opts, "actimeo", "acregmax")
        return 60.0 if found is None else found  # the kernel's default acregmax
    if fstype in ("cifs", "smb3"):
        if opts.get("cache") == "none":
            return 0.0
        found = _seconds(opts, "actimeo", "acregmax")
        return 1.0 if found is None else found  # cifs default actimeo
    return 0.0


def cache_warning(folder: Path | str, settle_seconds: float, mountinfo: str | None = None) -> str | None:
    """A warning when ``settle_seconds`` is shorter than what ``folder``'s mount caches, else None."""
    mount = mount_of(folder, mountinfo)
    if mount is None:
        return None
    cached = attribute_cache_seconds(mount)
    if settle_seconds >= cached or cached == 0:
        return None
    return (
        f"{folder} is on a {mount.fstype} mount that caches file sizes and times for up to {cached:g} s; "
        f"settle_seconds = {settle_seconds:g} cannot see a file still growing on the server: "
        f"set it to at least {cached:g} (better {cached + 10:g}) for this inbox"
    )
