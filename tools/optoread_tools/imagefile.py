"""The unix board's flash image file, seen from the laptop before MicroPython mounts it (CPython).

``optoread device --flash FILE`` formats only what it created or was told to (issue 17): a new or
blank file, or a LittleFS image with ``--format``; a database or document given by mistake is
refused before the firmware (``device.services.mount_image``) ever sees it.
"""

import os

LFS_MAGIC = b"littlefs"  # the superblock entry's name, at offset 8 of block 0 or 1 (LittleFS v2)


def image_state(path, block_size=4096):
    """What the file ``path`` holds, before it is mounted (and perhaps formatted) as the flash.

    "missing" (its folder exists), "blank" (empty, or only 0xFF / 0x00 bytes: nothing to lose),
    "littlefs" (a LittleFS superblock in block 0 or 1), "dir" (a folder) or "other" (anything
    else: never to be formatted without being asked). OSError when the folder does not exist.
    """
    try:
        st = os.stat(path)
    except OSError:
        folder = path.rsplit("/", 1)[0] if "/" in path else "."
        os.stat(folder or "/")  # OSError (ENOENT) when the folder is missing too
        return "missing"
    if st[0] & 0o170000 == 0o040000:
        return "dir"
    with open(path, "rb") as f:
        head = f.read(2 * block_size)
        for off in (8, block_size + 8):
            if head[off:off + len(LFS_MAGIC)] == LFS_MAGIC:
                return "littlefs"
        chunk = head
        while chunk:
            if chunk.count(b"\xff") + chunk.count(b"\x00") != len(chunk):
                return "other"
            chunk = f.read(block_size)
    return "blank"


def erase_image(path):
    """Overwrite the image file with 0xFF (erased flash), keeping its size: the next mount formats it."""
    size = os.stat(path)[6]
    chunk = b"\xff" * 256
    with open(path, "r+b") as f:
        left = size
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
