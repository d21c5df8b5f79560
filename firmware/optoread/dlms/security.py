"""DLMS/COSEM security suite 0: AES-128-GCM ciphering and HLS-GMAC (mechanism 5).

Layers, bottom up:

* an AES-128 block encryptor, the only platform seam in this module (``cryptolib``
  on MicroPython, the ``cryptography`` package on CPython), chosen at import;
* :class:`Gcm`: counter mode + GHASH in pure Python on top of that block function.
  GHASH uses Shoup's 8-bit table (4 KB per key, built once in ``Gcm(key)``) with the
  128-bit accumulator held as eight 16-bit small ints, so the per-byte loop never
  allocates, even on 32-bit boards where ints above 2**30 are heap objects;
* Green Book ciphering: security control byte (SC), ``protect``/``unprotect`` of
  ``SC || IC || ciphertext || tag``, the general-glo/ded-ciphering and glo-/ded-
  service wrappers, an invocation-counter (replay) check and HLS-GMAC.

Sans-IO: bytes in, bytes out. Bad input raises only :class:`SecurityError`.
Keys (``ek``) may be given as 16 bytes or as a ready :class:`Gcm` instance, which
saves rebuilding the GHASH table on every APDU.
"""

from array import array
from struct import pack_into, unpack_from

from optoread.compat import const
from optoread.dlms.axdr.data import encode_length, length_size
from optoread.dlms.xdlms import apdu as xdlms
from optoread.errors import SecurityError

try:  # MicroPython (the unix port, RP2040 and ESP32 builds with cryptolib)
    from cryptolib import aes as _mp_aes
except ImportError:
    _mp_aes = None

if _mp_aes is None:
    try:  # CPython: the `cryptography` package (a declared dependency of the laptop tools)
        from cryptography.hazmat.primitives.ciphers import (  # pyright: ignore[reportMissingImports]
            Cipher as _Cipher,
        )
        from cryptography.hazmat.primitives.ciphers import (  # pyright: ignore[reportMissingImports]
            algorithms as _algorithms,
        )
        from cryptography.hazmat.primitives.ciphers import (  # pyright: ignore[reportMissingImports]
            modes as _modes,
        )
    except ImportError:
        _Cipher = None


_MODE_ECB = const(1)
_BLOCK = const(16)
KEY_LEN = const(16)
SYSTEM_TITLE_LEN = const(8)
TAG_LEN = const(12)  # suite 0 always truncates the GCM tag to 96 bits
_IV_LEN = const(12)
_HEADER_LEN = const(5)  # SC (1) + invocation counter (4)

# Security control byte (Green Book 9.2.7.2.4.1)
SC_SUITE_MASK = const(0x0F)
SC_AUTH = const(0x10)
SC_ENC = const(0x20)
SC_AUTH_ENC = const(0x30)
SC_BROADCAST = const(0x40)
SC_COMPRESSED = const(0x80)

GENERAL_GLO_CIPHERING = const(0xDB)
GENERAL_DED_CIPHERING = const(0xDC)

# Which glo-/ded- tag carries which plain APDU: xdlms.plain_tag / is_dedicated / glo_tag.


# ---------------------------------------------------------------- AES block seam


class _Aes:
    """AES-128 encryption of one 16-byte block: ``encrypt(src, dst)``."""

    def __init__(self, key):
        if _mp_aes is not None:
            self._c = _mp_aes(bytes(key), _MODE_ECB)
            self.encrypt = self._c.encrypt  # cryptolib writes into dst itself
        elif _Cipher is not None:
            self._enc = _Cipher(_algorithms.AES(bytes(key)), _modes.ECB()).encryptor()
            self.encrypt = self._encrypt_cpython
        else:
            raise SecurityError("no AES implementation on this platform", field="aes")

    def _encrypt_cpython(self, src, dst):
        dst[0:16] = self._enc.update(bytes(src))


# ---------------------------------------------------------------- GHASH tables


def _rem_table():
    # Z * x^8 shifts 8 coefficients out of the low byte; REM[r] is their reduction
    # modulo x^128 + x^7 + x^2 + x + 1, which always lands in the top 16 bits.
    t = array("H", bytes(512))
    for r in range(256):
        lo = r
        hi = 0
        for _ in range(8):
            c = lo & 1
            lo >>= 1
            hi >>= 1
            if c:
                hi ^= 0xE100
        t[r] = hi
    return t


_REM = _rem_table()


def _key_tables(h):
    """Shoup's table M[b] = b * H for every byte b, split into eight 16-bit word arrays."""
    w = list(unpack_from(">8H", h, 0))
    ts = [array("H", bytes(512)) for _ in range(8)]
    i = 0x80  # the byte's MSB is the coefficient of x^0 (GCM bit order)
    while i:
        for k in range(8):
            ts[k][i] = w[k]
        c = w[7] & 1  # w = w * x: a right shift in GCM bit order, then reduce
        for k in range(7, 0, -1):
            w[k] = (w[k] >> 1) | ((w[k - 1] & 1) << 15)
        w[0] >>= 1
        if c:
            w[0] ^= 0xE100
        i >>= 1
    i = 2
    while i < 256:  # linearity: M[i ^ j] = M[i] ^ M[j]
        for j in range(1, i):
            for k in range(8):
                t = ts[k]
                t[i | j] = t[i] ^ t[j]
        i <<= 1
    return ts


def _ct_equal(a, a_off, b, b_off, n):
    # No early exit: the time taken does not depend on where a forged tag differs.
    d = 0
    for k in range(n):
        d |= a[a_off + k] ^ b[b_off + k]
    return d == 0


def _check_tag_len(n):
    if not (n == 4 or n == 8 or 12 <= n <= 16):
        raise SecurityError("tag length %d not allowed (4, 8, 12..16)" % n, field="tag")


class Gcm:
    """AES-128-GCM with a 96-bit IV (DLMS: system title (8) || invocation counter (4)).

    Not re-entrant: one instance owns small scratch buffers; use one per task.
    """

    def __init__(self, key):
        """Prepare the cipher and the GHASH table for a 16-byte ``key``."""
        if len(key) != KEY_LEN:
            raise SecurityError("key must be 16 bytes, got %d" % len(key), field="key")
        self._aes = _Aes(key)
        h = bytearray(16)
        self._aes.encrypt(bytes(16), h)
        (self._t0, self._t1, self._t2, self._t3,
         self._t4, self._t5, self._t6, self._t7) = _key_tables(h)
        self._y = bytearray(16)  # GHASH accumulator
        self._part = bytearray(16)  # pending partial block
        self._np = 0
        self._cb = bytearray(16)  # counter block
        self._ks = bytearray(16)  # key stream block

    # -- GHASH

    def _gh_blocks(self, d, o, nb):
        t0 = self._t0
        t1 = self._t1
        t2 = self._t2
        t3 = self._t3
        t4 = self._t4
        t5 = self._t5
        t6 = self._t6
        t7 = self._t7
        rem = _REM
        y = self._y
        for _ in range(nb):
            # Y = (Y ^ block) * H by Horner over the bytes, last byte first: Z = Z*x^8 ^ M[b].
            z0 = z1 = z2 = z3 = z4 = z5 = z6 = z7 = 0
            for j in range(15, -1, -1):
                b = y[j] ^ d[o + j]
                r = z7 & 0xFF
                z7 = ((z7 >> 8) | ((z6 & 0xFF) << 8)) ^ t7[b]
                z6 = ((z6 >> 8) | ((z5 & 0xFF) << 8)) ^ t6[b]
                z5 = ((z5 >> 8) | ((z4 & 0xFF) << 8)) ^ t5[b]
                z4 = ((z4 >> 8) | ((z3 & 0xFF) << 8)) ^ t4[b]
                z3 = ((z3 >> 8) | ((z2 & 0xFF) << 8)) ^ t3[b]
                z2 = ((z2 >> 8) | ((z1 & 0xFF) << 8)) ^ t2[b]
                z1 = ((z1 >> 8) | ((z0 & 0xFF) << 8)) ^ t1[b]
                z0 = (z0 >> 8) ^ rem[r] ^ t0[b]
            pack_into(">8H", y, 0, z0, z1, z2, z3, z4, z5, z6, z7)
            o += 16

    def _gh_update(self, d, i, end):
        part = self._part
        np = self._np
        if np:
            while np < 16 and i < end:
                part[np] = d[i]
                np += 1
                i += 1
            if np < 16:
                self._np = np
                return
            self._gh_blocks(part, 0, 1)
            np = 0
        nb = (end - i) >> 4
        if nb:
            self._gh_blocks(d, i, nb)
            i += nb << 4
        while i < end:
            part[np] = d[i]
            np += 1
            i += 1
        self._np = np

    def _gh_flush(self):
        np = self._np
        if np:
            part = self._part
            for k in range(np, 16):
                part[k] = 0
            self._gh_blocks(part, 0, 1)
            self._np = 0

    def _ghash(self, aad, c, c_off, n):
        """GHASH(AAD, C) into self._y."""
        y = self._y
        for k in range(16):
            y[k] = 0
        self._np = 0
        alen = 0
        if aad is not None:
            # AAD may be one bytes-like or a tuple/list of pieces hashed as one string, so
            # SC || AK || APDU never has to be concatenated. (type() rather than isinstance
            # with a tuple of types: building that tuple would allocate.)
            t = type(aad)
            if t is tuple or t is list:
                for p in aad:
                    self._gh_update(p, 0, len(p))
                    alen += len(p)
            else:
                self._gh_update(aad, 0, len(aad))
                alen = len(aad)
        self._gh_flush()
        self._gh_update(c, c_off, c_off + n)
        self._gh_flush()
        pack_into(">IIII", self._part, 0, alen >> 29, alen << 3, n >> 29, n << 3)
        self._gh_blocks(self._part, 0, 1)

    # -- counter mode

    def _set_iv(self, iv):
        if len(iv) != _IV_LEN:
            raise SecurityError("IV must be 12 bytes, got %d" % len(iv), field="iv")
        cb = self._cb
        for k in range(12):
            cb[k] = iv[k]

    def _ctr(self, src, s_off, dst, d_off, n):
        # Keystream blocks E(J0 + 1), E(J0 + 2), ... (J0 = IV || 00000001); IV already set.
        cb = self._cb
        ks = self._ks
        enc = self._aes.encrypt
        c = 2
        i = 0
        while i < n:
            pack_into(">I", cb, 12, c)
            enc(cb, ks)
            m = n - i
            if m > 16:
                m = 16
            for k in range(m):
                dst[d_off + k] = src[s_off + k] ^ ks[k]
            s_off += 16
            d_off += 16
            i += 16
            c += 1

    def _tag_mask(self):
        # E(J0): the block the GHASH result is XORed with to form the tag.
        cb = self._cb
        pack_into(">I", cb, 12, 1)
        self._aes.encrypt(cb, self._ks)
        return self._ks

    def ctr_into(self, iv, src, s_off, n, dst, d_off):
        """GCM counter-mode transform only (no tag; DLMS "encryption only"). Returns ``d_off + n``.

        ``dst`` may be ``src`` with ``d_off == s_off`` (in place).
        """
        self._set_iv(iv)
        self._ctr(src, s_off, dst, d_off, n)
        return d_off + n

    def seal_into(self, iv, src, s_off, n, dst, d_off, aad=None, tag_len=TAG_LEN):
        """Encrypt ``src[s_off:s_off+n]`` into ``dst`` at ``d_off``, then append the tag.

        ``aad`` is a bytes-like or a tuple of bytes-likes (hashed as their concatenation).
        Returns the offset after the tag. In place (same buffer, same offset) is allowed.
        """
        _check_tag_len(tag_len)
        if d_off + n + tag_len > len(dst):
            raise SecurityError("output buffer too small", field="dst", offset=d_off)
        self._set_iv(iv)
        self._ctr(src, s_off, dst, d_off, n)
        self._ghash(aad, dst, d_off, n)
        y = self._y
        ek0 = self._tag_mask()
        p = d_off + n
        for k in range(tag_len):
            dst[p + k] = y[k] ^ ek0[k]
        return p + tag_len

    def open_into(self, iv, src, s_off, n, tag, dst, d_off, aad=None):
        """Verify ``tag`` over ``src[s_off:s_off+n]`` and ``aad``, then decrypt into ``dst``.

        Nothing is written when the tag does not verify (SecurityError). Returns ``d_off + n``.
        """
        _check_tag_len(len(tag))
        if d_off + n > len(dst):
            raise SecurityError("output buffer too small", field="dst", offset=d_off)
        self._set_iv(iv)
        self._ghash(aad, src, s_off, n)
        y = self._y
        ek0 = self._tag_mask()
        d = 0
        for k in range(len(tag)):
            d |= y[k] ^ ek0[k] ^ tag[k]
        if d:
            raise SecurityError("authentication tag mismatch", field="tag")
        self._ctr(src, s_off, dst, d_off, n)
        return d_off + n

    def encrypt(self, iv, plaintext, aad=None, tag_len=TAG_LEN):
        """Return ``(ciphertext, tag)`` for ``plaintext`` under this key, a 12-byte ``iv`` and ``aad``."""
        n = len(plaintext)
        out = bytearray(n + tag_len)
        self.seal_into(iv, plaintext, 0, n, out, 0, aad, tag_len)
        mv = memoryview(out)
        return bytes(mv[:n]), bytes(mv[n:])

    def decrypt(self, iv, ciphertext, aad, tag):
        """Return the plaintext; raise SecurityError("authentication tag mismatch") on a bad tag."""
        n = len(ciphertext)
        out = bytearray(n)
        self.open_into(iv, ciphertext, 0, n, tag, out, 0, aad)
        return bytes(out)


# ---------------------------------------------------------------- DLMS ciphering


def _gcm(ek):
    if isinstance(ek, Gcm):
        return ek
    if ek is None:
        raise SecurityError("encryption key missing", field="ek")
    if len(ek) != KEY_LEN:
        raise SecurityError("encryption key must be 16 bytes, got %d" % len(ek), field="ek")
    return Gcm(ek)


def _check_ak(ak):
    if ak is None:
        raise SecurityError("authentication key missing", field="ak")
    if len(ak) != KEY_LEN:
        raise SecurityError("authentication key must be 16 bytes, got %d" % len(ak), field="ak")


def _check_sc(sc, offset=None):
    if sc & SC_COMPRESSED:
        raise SecurityError("compressed ciphering not supported (SC 0x%02X)" % sc,
                            field="security control", offset=offset)
    if sc & SC_SUITE_MASK:
        raise SecurityError("unknown security suite %d (SC 0x%02X)" % (sc & SC_SUITE_MASK, sc),
                            field="security control", offset=offset)
    if not sc & SC_AUTH_ENC:
        raise SecurityError("SC 0x%02X selects neither authentication nor encryption" % sc,
                            field="security control", offset=offset)


def _check_st(system_title):
    if system_title is None:
        raise SecurityError("missing system title", field="system title")
    if len(system_title) != SYSTEM_TITLE_LEN:
        raise SecurityError("system title must be 8 bytes, got %d" % len(system_title),
                            field="system title")


def _check_ic(ic):
    if not 0 <= ic <= 0xFFFFFFFF:
        raise SecurityError("invocation counter out of range", field="invocation counter")


def _iv(system_title, ic):
    iv = bytearray(12)
    for k in range(8):
        iv[k] = system_title[k]
    pack_into(">I", iv, 8, ic)
    return iv


def protected_len(sc, apdu_len):
    """Length of ``SC || IC || ciphertext [|| tag]`` for an APDU of ``apdu_len`` bytes."""
    return _HEADER_LEN + apdu_len + (TAG_LEN if sc & SC_AUTH else 0)


def protect_into(buf, off, sc, system_title, invocation_counter, ek, ak, apdu):
    """Write ``SC || IC || ciphertext-or-plaintext [|| tag]`` into ``buf`` at ``off``; return the new offset.

    ``sc``: 0x10 authentication only (APDU sent in clear, AAD = SC || AK || APDU),
    0x20 encryption only (no tag), 0x30 both (AAD = SC || AK); 0x40 may be added
    (broadcast key: pass that key as ``ek``). Tag: 12 bytes.
    """
    _check_sc(sc)
    _check_st(system_title)
    _check_ic(invocation_counter)
    n = len(apdu)
    end = off + protected_len(sc, n)
    if end > len(buf):
        raise SecurityError("output buffer too small", field="buf", offset=off)
    gcm = _gcm(ek)
    iv = _iv(system_title, invocation_counter)
    buf[off] = sc
    pack_into(">I", buf, off + 1, invocation_counter)
    p = off + _HEADER_LEN
    scb = bytes((sc,))
    if sc & SC_AUTH:
        _check_ak(ak)
        if sc & SC_ENC:
            gcm.seal_into(iv, apdu, 0, n, buf, p, (scb, ak), TAG_LEN)
        else:
            for k in range(n):
                buf[p + k] = apdu[k]
            gcm.seal_into(iv, b"", 0, 0, buf, p + n, (scb, ak, apdu), TAG_LEN)
    else:
        gcm.ctr_into(iv, apdu, 0, n, buf, p)
    return end


def protect(sc, system_title, invocation_counter, ek, ak, apdu):
    """Return ``SC || IC(4, big-endian) || ciphertext [|| tag(12)]`` (see :func:`protect_into`)."""
    out = bytearray(protected_len(sc, len(apdu)))
    protect_into(out, 0, sc, system_title, invocation_counter, ek, ak, apdu)
    return bytes(out)


def unprotect(data, system_title, ek, ak, off=0, end=None):
    """Check and decipher ``SC || IC || content [|| tag]`` in ``data[off:end]``.

    Returns ``(apdu, sc, invocation_counter)``. ``system_title`` is the sender's.
    The tag is verified before anything is deciphered. ``ak`` may be None only for
    encryption-only content (SC 0x20), which carries no tag.
    """
    if end is None:
        end = len(data)
    if end - off < _HEADER_LEN:
        raise SecurityError("truncated security header", field="security header", offset=off)
    sc = data[off]
    _check_sc(sc, off)
    _check_st(system_title)
    ic = unpack_from(">I", data, off + 1)[0]
    p = off + _HEADER_LEN
    gcm = _gcm(ek)
    iv = _iv(system_title, ic)
    mv = memoryview(data)
    if sc & SC_AUTH:
        _check_ak(ak)
        if end - p < TAG_LEN:
            raise SecurityError("truncated: no room for the 12-byte tag", field="tag", offset=p)
        t = end - TAG_LEN
        n = t - p
        out = bytearray(n)
        scb = bytes((sc,))
        if sc & SC_ENC:
            gcm.open_into(iv, data, p, n, mv[t:end], out, 0, (scb, ak))
        else:
            gcm.open_into(iv, b"", 0, 0, mv[t:end], out, 0, (scb, ak, mv[p:t]))
            out[0:n] = mv[p:t]
    else:
        n = end - p
        out = bytearray(n)
        gcm.ctr_into(iv, data, p, n, out, 0)
    return bytes(out), sc, ic


def check_invocation_counter(received, last):
    """Return ``received`` if it is above ``last`` (None: nothing seen yet); else raise (replay)."""
    if last is not None and received <= last:
        raise SecurityError("invocation counter %d not above %d (replay)" % (received, last),
                            field="invocation counter")
    return received


# ---------------------------------------------------------------- APDU wrappers


_len_size = length_size


def _put_len(buf, off, n):
    if n >= 0x1000000:
        raise SecurityError("APDU too long", field="length")
    return encode_length(buf, off, n)


def _get_len(data, p, end, field):
    """BER/A-XDR length at ``p``; returns ``(n, p_after)``; checks only the length bytes."""
    if p >= end:
        raise SecurityError("truncated: length missing", field=field, offset=p)
    b = data[p]
    p += 1
    if b < 0x80:
        return b, p
    k = b & 0x7F
    if k == 0 or k > 3:
        raise SecurityError("bad length encoding 0x%02X" % b, field=field, offset=p - 1)
    if end - p < k:
        raise SecurityError("truncated length", field=field, offset=p - 1)
    n = 0
    for _ in range(k):
        n = (n << 8) | data[p]
        p += 1
    return n, p


def wrap_general_glo(system_title, sc, ic, ek, ak, apdu, tag=GENERAL_GLO_CIPHERING):
    """general-glo-ciphering APDU: ``DB 08 <system title> <len> SC IC ciphertext [tag]``.

    Pass ``tag=GENERAL_DED_CIPHERING`` (0xDC) with the dedicated key for general-ded-ciphering.
    """
    if tag != GENERAL_GLO_CIPHERING and tag != GENERAL_DED_CIPHERING:
        raise SecurityError("not a general ciphering tag 0x%02X" % tag, field="tag")
    _check_st(system_title)
    clen = protected_len(sc, len(apdu))
    out = bytearray(2 + SYSTEM_TITLE_LEN + _len_size(clen) + clen)
    out[0] = tag
    out[1] = SYSTEM_TITLE_LEN
    for k in range(SYSTEM_TITLE_LEN):
        out[2 + k] = system_title[k]
    p = _put_len(out, 2 + SYSTEM_TITLE_LEN, clen)
    protect_into(out, p, sc, system_title, ic, ek, ak, apdu)
    return bytes(out)


def wrap_general_ded(system_title, sc, ic, ek, ak, apdu):
    """general-ded-ciphering (0xDC): as :func:`wrap_general_glo`, ``ek`` = the dedicated key."""
    return wrap_general_glo(system_title, sc, ic, ek, ak, apdu, GENERAL_DED_CIPHERING)


def wrap_service(tag, sc, ic, ek, ak, apdu, system_title=None):
    """Service-specific glo-/ded- APDU: ``<tag> <len> SC IC ciphertext [tag]``.

    ``tag`` is e.g. 0xC8 glo-get-request, 0x21 glo-initiate-request, 0xD0 ded-get-request.
    ``system_title`` is our own (the sender's): it is not sent but forms the IV.
    """
    if xdlms.plain_tag(tag) is None:
        raise SecurityError("not a glo-/ded- service tag 0x%02X" % tag, field="tag")
    _check_st(system_title)
    clen = protected_len(sc, len(apdu))
    out = bytearray(1 + _len_size(clen) + clen)
    out[0] = tag
    p = _put_len(out, 1, clen)
    protect_into(out, p, sc, system_title, ic, ek, ak, apdu)
    return bytes(out)


def unwrap(apdu_bytes, ek, ak, system_title=None, off=0, end=None):
    """Decipher a general-glo/ded-ciphering or glo-/ded- service APDU in ``apdu_bytes[off:end]``.

    ``system_title`` is the sender's: required for glo-/ded- service tags (which do not
    carry it); for 0xDB/0xDC it is checked against the one in the APDU when given.
    Returns ``(plain_apdu, info)``; ``info`` holds ``tag``, ``kind`` ("general-glo",
    "general-ded", "glo", "ded"), ``system_title``, ``sc``, ``ic``, ``authenticated``,
    ``encrypted``, ``broadcast`` and ``plain_tag`` (the tag the plain APDU should have,
    None for general ciphering).
    """
    data = apdu_bytes
    if end is None:
        end = len(data)
    if end - off < 1:
        raise SecurityError("truncated: empty APDU", field="tag", offset=off)
    tag = data[off]
    p = off + 1
    plain_tag = None
    if tag == GENERAL_GLO_CIPHERING or tag == GENERAL_DED_CIPHERING:
        kind = "general-glo" if tag == GENERAL_GLO_CIPHERING else "general-ded"
        st_len, p = _get_len(data, p, end, "system title")
        if st_len > end - p:
            raise SecurityError("truncated system title", field="system title", offset=p)
        if st_len == 0:
            if system_title is None:
                raise SecurityError("missing system title (empty in APDU, none given)",
                                    field="system title", offset=p)
            st = system_title
        elif st_len != SYSTEM_TITLE_LEN:
            raise SecurityError("system title must be 8 bytes, got %d" % st_len,
                                field="system title", offset=p)
        else:
            st = bytes(memoryview(data)[p:p + st_len])
            if system_title is not None and st != bytes(system_title):
                raise SecurityError("system title differs from the expected one",
                                    field="system title", offset=p)
        p += st_len
    elif xdlms.plain_tag(tag) is not None:
        kind = "ded" if xdlms.is_dedicated(tag) else "glo"
        plain_tag = xdlms.plain_tag(tag)
        if system_title is None:
            raise SecurityError("missing system title (needed for tag 0x%02X)" % tag,
                                field="system title", offset=off)
        st = system_title
    else:
        raise SecurityError("not a ciphered APDU (tag 0x%02X)" % tag, field="tag", offset=off)
    clen, p = _get_len(data, p, end, "ciphered content")
    if clen > end - p:
        raise SecurityError("truncated: ciphered content needs %d bytes, %d present" % (clen, end - p),
                            field="ciphered content", offset=p)
    if p + clen != end:
        raise SecurityError("%d bytes after the ciphered content" % (end - p - clen),
                            field="ciphered content", offset=p + clen)
    plain, sc, ic = unprotect(data, st, ek, ak, p, end)
    info = {
        "tag": tag,
        "kind": kind,
        "system_title": bytes(st),
        "sc": sc,
        "ic": ic,
        "authenticated": bool(sc & SC_AUTH),
        "encrypted": bool(sc & SC_ENC),
        "broadcast": bool(sc & SC_BROADCAST),
        "plain_tag": plain_tag,
    }
    return plain, info


# ---------------------------------------------------------------- HLS-GMAC (mechanism 5)


def hls_gmac(system_title, invocation_counter, ek, ak, challenge, sc=SC_AUTH):
    """f(challenge) = ``SC || IC || GMAC(SC || AK || challenge)`` (12-byte tag), IV = system title || IC.

    The client answers the server's challenge StoC with its own system title and counter.
    """
    _check_sc(sc)
    if not sc & SC_AUTH:
        raise SecurityError("HLS-GMAC needs the authentication bit in SC", field="security control")
    _check_st(system_title)
    _check_ic(invocation_counter)
    _check_ak(ak)
    gcm = _gcm(ek)
    out = bytearray(_HEADER_LEN + TAG_LEN)
    out[0] = sc
    pack_into(">I", out, 1, invocation_counter)
    gcm.seal_into(_iv(system_title, invocation_counter), b"", 0, 0, out, _HEADER_LEN,
                  (bytes((sc,)), ak, challenge), TAG_LEN)
    return bytes(out)


def verify_hls_gmac(reply, system_title, ek, ak, challenge, last_ic=None):
    """Check the server's f(CtoS) ``reply`` (17 bytes) against our challenge CtoS.

    ``system_title`` is the server's. Returns the server's invocation counter; raises
    SecurityError on a bad length, SC, tag, or (with ``last_ic``) a counter that did not increase.
    """
    if len(reply) != _HEADER_LEN + TAG_LEN:
        raise SecurityError("HLS-GMAC reply must be 17 bytes, got %d" % len(reply), field="f(CtoS)")
    sc = reply[0]
    _check_sc(sc, 0)
    if not sc & SC_AUTH:
        raise SecurityError("HLS-GMAC reply without the authentication bit", field="security control",
                            offset=0)
    ic = unpack_from(">I", reply, 1)[0]
    expect = hls_gmac(system_title, ic, ek, ak, challenge, sc)
    if not _ct_equal(expect, _HEADER_LEN, reply, _HEADER_LEN, TAG_LEN):
        raise SecurityError("authentication tag mismatch", field="f(CtoS)", offset=_HEADER_LEN)
    return check_invocation_counter(ic, last_ic)
