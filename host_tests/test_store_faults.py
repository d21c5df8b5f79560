"""Flash faults on the unix port: a block the block device cannot read, under VfsLfs2.

The store's mount must never raise for one unreadable session file: it is quarantined
(``NNNNNNNN.bad``), listed as a damaged session, and the store boots and records on.
The block device raises OSError for the block (as a board's driver may) or returns -EIO
(LittleFS's own error path). CPython's littlefs-python ignores exceptions from its block
device, so there the same case is made with corrupt CTZ pointers (test_store_rot.py).
"""

import os

import portable
from test_store import T0, Env, RamBdev, collect, small_heap, write_sample

PORTABLE = True


class BadBlockBdev(RamBdev):
    """A RAM block device one of whose blocks cannot be read (``bad``; ``mode`` "raise" or "eio")."""

    bad = None
    mode = "raise"

    def readblocks(self, n, buf, off=0):
        if n == self.bad:
            if self.mode == "raise":
                raise OSError(5)
            return -5
        return RamBdev.readblocks(self, n, buf, off)


def _vfs_env():
    if not portable.IS_MICROPYTHON:
        portable.skip("littlefs-python ignores block device errors: see test_store_rot.py")
    if small_heap():
        portable.skip("needs a RAM disk of 64 blocks")
    env = Env("vfs", blocks=64)
    bdev = BadBlockBdev(env.block_size, 64, env.bdev.data)
    return env, bdev


def _remount(env, bdev):
    import vfs

    vfs.umount(env.point)
    env.bdev = bdev
    vfs.mount(vfs.VfsLfs2(bdev), env.point)


def _run(mode, which=0):
    """Session 3 of 5 unreadable: its first block (``which`` 0), or its last (-1), which LittleFS
    also reads to count the blocks in use: statvfs fails too, and the store still records."""
    env, bdev = _vfs_env()
    try:
        s = env.store(reserve=0)
        s.mount()
        exps = []
        for i in range(5):
            exps.append(write_sample(s, meter="M-%d" % (i + 1), rows=2500, seed=i + 1)[1])
        data = env.read_file(env.path(3))
        blocks = [b for b in range(64) if bytes(bdev.data[b * 4096:b * 4096 + 64]) == data[:64]
                  or bytes(bdev.data[b * 4096 + 16:b * 4096 + 80]) in data]
        assert len(blocks) >= 2, blocks
        bdev.bad = blocks[which]
        bdev.mode = mode
        _remount(env, bdev)
        portable.raises(OSError, env.read_file, env.path(3))
        s = env.store(reserve=0)
        rep = s.mount()  # never raises for one unreadable file
        assert rep.sessions == 5 and rep.unreadable == 1, rep
        x = s.session(3)
        assert not x.complete and x.damaged == 1 and x.error.startswith("unreadable on flash: file "), x.error
        for seq in (1, 2, 4, 5):
            assert collect(s, seq) == exps[seq - 1]
        assert collect(s, 3)[-1] == ("commit", ("incomplete", x.error, 0, 0))
        names = os.listdir(env.root)
        assert "00000003.bad" in names and "00000003.ses" not in names
        if which == -1:  # LittleFS cannot count the blocks in use: free space unknown
            assert s.free_space() == -1 and s.space()["free"] == -1
        w = s.begin("M-6", "p", T0)
        w.value("1.8.0", 6, 0, 30)
        assert w.commit().seq == 6
        # the next boot lists the quarantined file again, and the store goes on numbering
        _remount(env, bdev)
        s = env.store(reserve=0)
        rep = s.mount()
        assert rep.unreadable == 1 and [y.seq for y in s.sessions()] == [1, 2, 3, 4, 5, 6]
        assert s.begin("M-7", "p", T0).commit().seq == 7
        s.ack(7)
        assert s.reclaim(None) == 7 and os.listdir(env.root) == ["acks"]
        assert s.free_space() > 0
    finally:
        env.close()


def test_unreadable_block_raising_oserror_is_quarantined():
    _run("raise")


def test_unreadable_block_reported_as_eio_is_quarantined():
    _run("eio")


def test_unreadable_last_block_fails_statvfs_and_the_store_still_records():
    _run("raise", -1)
