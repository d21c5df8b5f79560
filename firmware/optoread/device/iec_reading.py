"""A reading of an IEC 62056-21 meter (mode A-D readout) for :class:`optoread.device.reader.Reader`.

Apart from the reader because most readings are DLMS ones: loaded when a meter answers the
sign-on without offering mode E, or is known to be an IEC meter (RAM on a board).
"""

from optoread.errors import OptoreadError
from optoread.iec62056_21 import readout as iec62056_21_readout


def read(rd, prof, plan, drv, opts, ident):
    """Read an IEC 62056-21 meter (readout) into one session for :class:`Reader` ``rd``."""
    meter_id = ident.text if ident is not None else "iec21"
    w = rd.store.begin(meter_id, plan["name"], rd.clock())
    count = [0]

    def sink(address, values):
        # Values go straight to the store; the session only commits when the BCC verified.
        for v, unit in values:
            w.value(address, v, None, unit)
        count[0] += 1

    try:
        r = drv.run(iec62056_21_readout.readout(opts, sink, ident=ident))
    except OptoreadError as e:
        return w.abort(str(e))
    if ident is None and r.identification is not None:
        meter_id = r.identification.text
    rd.profiles.put(meter_id, prof)
    rd.say("readout: %d data sets" % count[0])
    return w.commit()
