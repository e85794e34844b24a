from __future__ import annotations

import pytest

from asrd.control.mountcache import attribute_cache_seconds, cache_warning, mount_of

_LINE = "{id} 1 0:{id} / {point} rw,relatime shared:1 - {fstype} {source} {opts}"


def mountinfo(*mounts: tuple[str, str, str]) -> str:
    lines = [_LINE.format(id=30, point="/", fstype="ext4", source="/dev/sda1", opts="rw")]
    for i, (point, fstype, opts) in enumerate(mounts):
        lines.append(_LINE.format(id=31 + i, point=point, fstype=fstype, source="remote:", opts=opts))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("fstype", "opts", "seconds"),
    [
        ("fuse.sshfs", "rw,user_id=0,group_id=0", 20.0),
        ("fuse.sshfs", "rw,cache=no", 0.0),
        ("nfs4", "rw,vers=4.2,hard,proto=tcp", 60.0),
        ("nfs", "rw,vers=3,actimeo=3", 3.0),
        ("nfs", "rw,vers=3,noac", 0.0),
        ("cifs", "rw,vers=3.1.1,actimeo=1", 1.0),
        ("fuse.rclone", "rw,user_id=0", 1.0),
        ("ext4", "rw", 0.0),
    ],
)
def test_attribute_cache_per_mount(fstype: str, opts: str, seconds: float) -> None:
    mount = mount_of("/mnt/x/inbox", mountinfo(("/mnt/x", fstype, opts)))
    assert mount is not None and mount.fstype == fstype
    assert attribute_cache_seconds(mount) == seconds


def test_warns_when_settle_is_below_the_cache() -> None:
    text = mountinfo(("/mnt/nas", "fuse.sshfs", "rw"), ("/mnt/nas/local", "ext4", "rw"))
    warning = cache_warning("/mnt/nas/voice", 3, text)
    assert warning is not None and "fuse.sshfs" in warning and "20 s" in warning and "settle_seconds = 3" in warning
    assert cache_warning("/mnt/nas/voice", 30, text) is None
    assert cache_warning("/mnt/nas/local/voice", 3, text) is None  # the innermost mount decides
    assert cache_warning("/home/me", 1, text) is None
