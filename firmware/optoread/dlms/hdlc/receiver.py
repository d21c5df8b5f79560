"""Frames out of a byte stream (IEC 62056-46): :class:`FrameReceiver` (framing by the length
field, re-hunting after a bad frame, no allocation per byte or frame) and :class:`Reassembler`
(the information fields of segmented I/UI frames joined into one buffer).

Sans-IO: bytes go in, :class:`~optoread.dlms.hdlc.frame.Frame` objects and complete information
fields come out; the frame format itself is :mod:`.frame`'s.
"""

from optoread.compat import buffer, const, viper
from optoread.dlms.hdlc.frame import Frame, crc_ok, header_len
from optoread.errors import LinkError

# The frame format's constants, as in frame.py (compiled into the byte loop).
_FLAG = const(0x7E)
_FMT_TYPE3 = const(0xA0)
_MAX_LENGTH = const(0x7FF)
_MIN_LENGTH = const(7)
_E_ADDRESS = const(-1)  # header_len's error codes
_E_CONTROL = const(-2)


def _copy_py(dst, d, src, s, n):
    for j in range(n):
        dst[d + j] = src[s + j]


# dst[d:d + n] = src[s:s + n] without allocating (a memoryview slice is an object, and the
# receiver runs under heap_lock): every received byte is copied twice (frame, reassembly), so
# machine code where the port has a native emitter (compat.viper). Forward, byte by byte: also
# right within one buffer when d <= s.
_copy = viper(_copy_py, "@micropython.viper\n"
              "def f(t:ptr8,d:int,r:ptr8,s:int,n:int):\n"
              " n+=s\n"
              " while s<n:\n"
              "  t[d]=r[s]\n"
              "  d+=1\n"
              "  s+=1")


class Reassembler:
    """Joins the information fields of segmented I/UI frames into one fixed buffer.

    ``add(frame)`` copies the info field and returns True when the frame closed
    the sequence (S bit clear); the result is ``buf[:length]`` (LLC, if any, is
    still in front: see :func:`.frame.strip_llc`). The next ``add`` after a complete
    result starts a new one.
    """

    def __init__(self, capacity, buf=None):
        self.buf = buffer(capacity, buf)  # buf: the caller's, if large enough
        self.length = 0
        self.segments = 0
        self.complete = False

    def reset(self):
        self.length = 0
        self.segments = 0
        self.complete = False

    def add(self, frame):
        """Append ``frame``'s info field; True when the reassembled field is complete."""
        return self.add_bytes(frame.buf, frame.info_off, frame.info_len, not frame.segmented)

    def add_bytes(self, data, off, n, last):
        """Append ``data[off:off+n]``; ``last`` closes the sequence."""
        if self.complete:
            self.reset()
        b = self.buf
        o = self.length
        if o + n > len(b):
            self.reset()
            raise LinkError("reassembled information exceeds %d bytes" % len(b), "info")
        if off < 0 or off + n > len(data):
            _copy_py(b, o, data, off, n)  # as before (IndexError...): _copy checks nothing
        else:
            _copy(b, o, data, off, n)
        self.length = o + n
        self.segments += 1
        self.complete = bool(last)
        return self.complete

    def data(self):
        """memoryview of the reassembled bytes."""
        return memoryview(self.buf)[: self.length]


# ---------------------------------------------------------------- receiver


class FrameReceiver:
    """Bytes in, frames out; framing by the length field, never by scanning for 0x7E.

    ``capacity`` is the largest accepted length field (see :func:`.frame.frame_capacity`);
    the buffer is allocated once here. ``feed(data, off=0, end=None)`` consumes
    bytes until one frame is complete (``ready`` True, fields in ``frame``, valid
    until the next feed) and returns the offset it reached. Call it again (same
    data, returned offset) until ``ready`` is False: only then is everything,
    including bytes replayed from a rejected candidate, consumed::

        while True:
            off = rx.feed(chunk, off, n)
            if not rx.ready:
                break
            handle(rx.frame)

    Garbage, impossible lengths, bad headers and bad HCS/FCS are counted in
    ``errors`` (reason in ``last_error``) and the discarded bytes in
    ``dropped_bytes``; the receiver then re-hunts for a flag from the byte after
    the bad frame's start. Chunking never changes the result. No allocation per
    byte or per frame.
    """

    def __init__(self, capacity, buf=None):
        if not _MIN_LENGTH <= capacity <= _MAX_LENGTH:
            raise LinkError("receiver capacity %d outside %d..%d" % (capacity, _MIN_LENGTH, _MAX_LENGTH),
                            "capacity")
        self.capacity = capacity
        self.buf = buffer(capacity, buf)  # buf: the caller's (session.LinkBuffers), if large enough
        self.frame = Frame()
        self.frame.buf = self.buf
        self.ready = False
        self.frames = 0
        self.errors = 0
        self.dropped_bytes = 0
        self.last_error = None
        self.reset()

    def reset(self):
        """Forget any partial frame and hunt for a flag again (counters kept)."""
        # Candidate frame (format byte onwards) in buf[0:_n]; bytes to replay after
        # a bad candidate in buf[_ps:_pe], always with _n <= _ps.
        self._n = 0
        self._need = 2
        self._chk = 0
        self._len = 0
        self._hdr = 0
        self._ps = 0
        self._pe = 0
        self._hunting = True
        self._want_flag = False
        self.ready = False

    @property
    def pending(self):
        """Bytes held in the buffer: a partial frame plus bytes waiting to be re-hunted."""
        return self._n + self._pe - self._ps

    def feed(self, data, off=0, end=None):
        """Consume ``data[off:end]`` up to the end of one frame; return the offset reached."""
        if end is None or end > len(data):
            end = len(data)  # as the A-XDR decoders do; it also bounds what _copy reads
        if off < 0:
            raise LinkError("negative offset %d" % off, "offset")
        self.ready = False
        b = self.buf
        while True:
            if self._ps < self._pe:  # replay bytes of a rejected candidate first
                src = b
                i = self._ps
                e = self._pe
                replay = True
            elif off < end:
                src = data
                i = off
                e = end
                replay = False
            else:
                return off
            c = src[i]
            if self._want_flag:
                # The closing flag of the frame just delivered (it may also open the next).
                self._want_flag = False
                if c == _FLAG:
                    i += 1
                    while i < e and src[i] == _FLAG:  # back-to-back flags, as below, at once
                        i += 1
                else:
                    self.errors += 1
                    self.last_error = "flag"
                    self._hunting = True
                k = 0
            elif self._hunting:
                if c == _FLAG:
                    self._hunting = False
                else:
                    self.dropped_bytes += 1
                i += 1
                k = 0
            elif self._n == 0 and c == _FLAG:  # back-to-back flags
                i += 1
                k = 0
            else:
                n = self._n
                k = self._need - n
                if k > e - i:
                    k = e - i
                _copy(b, n, src, i, k)  # n + k <= _need <= capacity; i + k <= e <= len(src)
                i += k
                self._n = n + k
            if replay:
                self._ps = i
            else:
                off = i
            if k:
                r = self._check()
                if r > 0:
                    self.ready = True
                    self.frames += 1
                    self._want_flag = True
                    return off
                if r < 0:
                    self._reject()

    def _reject(self):
        # Drop the candidate's first byte and replay the rest: the next frame may
        # start at any later flag, even one inside the rejected bytes.
        self.errors += 1
        self.dropped_bytes += 1
        b = self.buf
        m = self._n - 1
        if self._ps < self._pe:
            ps = self._ps - m
            for j in range(m - 1, -1, -1):  # backwards: the regions may overlap, ps >= 1
                b[ps + j] = b[1 + j]
            self._ps = ps
        else:
            self._ps = 1
            self._pe = 1 + m
        self._n = 0
        self._chk = 0
        self._need = 2
        self._hunting = True

    def _bad(self, reason):
        self.last_error = reason
        return -1

    def _check(self):
        # 1 = frame complete and good, 0 = need more bytes, -1 = bad candidate.
        b = self.buf
        n = self._n
        if self._chk == 0:
            if n < 2:
                self._need = 2
                return 0
            fmt = b[0]
            if fmt & 0xF0 != _FMT_TYPE3:
                return self._bad("format")
            ln = ((fmt & 7) << 8) | b[1]
            if ln < _MIN_LENGTH or ln > self.capacity:
                return self._bad("length")
            self._len = ln
            self._need = ln
            self._chk = 1
            if n == 2:
                return 0  # _need was 2: header_len needs a byte more (it would answer 0)
        ln = self._len
        if self._chk == 1:
            h = header_len(b, 0, n, ln)
            if h == 0:
                return 0
            if h < 0:
                return self._bad("address" if h == _E_ADDRESS else "control" if h == _E_CONTROL else "length")
            self._hdr = h
            self._chk = 2
        h = self._hdr
        if self._chk == 2:
            if ln > h + 2:
                if n < h + 2:
                    return 0
                if not crc_ok(b, 0, h):
                    return self._bad("HCS")
            self._chk = 3
        if n < ln:
            return 0
        if not crc_ok(b, 0, ln - 2):
            return self._bad("FCS")
        self.frame.fill(b, 0, ln, h, True if ln > h + 2 else None, True, ln)
        self._n = 0
        self._chk = 0
        self._need = 2
        return 1
