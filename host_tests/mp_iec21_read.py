"""Read an IEC 62056-21 meter on a tty/pty with the firmware modules (run by the unix port or CPython).

    micropython host_tests/mp_iec21_read.py PTY [key=value ...]

Options are ``optoread.iec62056_21.Options`` fields (ints parsed); prints the readout as
one JSON line, or ``ERROR <class>: <message>`` and exit status 3.
"""

import json
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../firmware")

from optoread import driver  # noqa: E402
from optoread.device.unixport import TtyTransport  # noqa: E402
from optoread.errors import OptoreadError  # noqa: E402
from optoread.iec62056_21 import readout as iec_readout  # noqa: E402
from optoread.iec62056_21 import signon as iec  # noqa: E402


def main():
    path = sys.argv[1]
    kw = {}
    for arg in sys.argv[2:]:
        k, v = arg.split("=", 1)
        if v in ("True", "False"):
            v = v == "True"
        else:
            try:
                v = int(v)
            except ValueError:
                pass
        kw[k] = v
    t = TtyTransport(path)
    try:
        r = driver.run(iec_readout.readout(iec.Options(**kw)), t)
    except OptoreadError as e:
        print("ERROR %s: %s" % (type(e).__name__, e))
        sys.exit(3)
    finally:
        t.close()
    print(json.dumps(r.as_dict()))


main()
