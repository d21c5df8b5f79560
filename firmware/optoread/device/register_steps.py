"""The register steps of a plan (``registers`` and ``browse``) for :class:`optoread.device.reader.Reader`.

Apart from the reader because profile plans (IS 15959) have none: loaded, with the register
and association classes, by the first plan that reads registers (RAM on a board).
"""

from optoread import obis as obislib
from optoread.dlms.cosem import association as cosem_association
from optoread.dlms.cosem import base as cosem
from optoread.dlms.cosem import register as cosem_register
from optoread.dlms.cosem.base import value_text
from optoread.errors import DataAccessError


def read(rd, sess, w, codes, classes=None):
    """A plan's register step: each register (class 3 unless ``classes`` says) as a value."""
    cache = {}
    items = [(classes[i] if classes else cosem.CLASS_REGISTER, codes[i]) for i in range(len(codes))]
    results = cosem_register.read_registers(sess, items, cache)
    for code, v in zip(codes, results):
        name = obislib.format(code)
        if isinstance(v, cosem.Value):
            # Classes 4 and 5 keep their capture time (a maximum demand's) with the value.
            t = v.capture_time
            w.value(name, v.raw if isinstance(v.raw, (int, float, str)) else value_text(v.raw), v.scaler,
                    v.unit_code, value_text(t) if t is not None else None)
        else:
            try:
                w.value(name, value_text(cosem_register.read_data(sess, code)))
            except DataAccessError as e:  # the meter refused this object; link errors go up
                w.value(name, None, None, "error: %s" % e)
    rd.say("%d registers" % len(codes))


def browse(rd, sess, w, ln):
    """A plan's browse step: the object list, then every register in it (eight at a time)."""
    regs = []
    classes = []

    def sink(o):
        if o[0] in (cosem.CLASS_REGISTER, cosem.CLASS_EXTENDED_REGISTER, cosem.CLASS_DEMAND_REGISTER):
            regs.append(o[2])
            classes.append(o[0])

    n = cosem_association.browse(sess, sink, ln=ln)
    rd.say("object list: %d objects, %d registers" % (n, len(regs)))
    for i in range(0, len(regs), 8):
        read(rd, sess, w, regs[i:i + 8], classes[i:i + 8])
