"""Names of ACSE and xDLMS-initiate codes (IEC 62056-5-3): conformance bits (the constants a
client does not test, and the names of all), mechanisms, result-source-diagnostics.

Apart from :mod:`.apdu` because a reading needs them only to explain a refusal or in the laptop
tools' listings: the tables are loaded on first use ("loaded on first use" in
docs/architecture.md: RAM on a board).
"""

from optoread.compat import const

_SOURCE_USER = const(1)  # acse-service-user, as apdu.SOURCE_USER (a result-source-diagnostic)

# Conformance bits the client never tests (apdu.py keeps the ones it does: block transfer for SET,
# multiple references), for the simulator and tests.
CONF_GENERAL_BLOCK_TRANSFER = const(0x200000)
CONF_READ = const(0x100000)
CONF_WRITE = const(0x080000)
CONF_PRIORITY_MGMT = const(0x004000)
CONF_ATTRIBUTE0_WITH_GET = const(0x002000)
CONF_BLOCK_TRANSFER_GET = const(0x001000)  # block-transfer-with-get-or-read
CONF_BLOCK_TRANSFER_ACTION = const(0x000400)
CONF_INFORMATION_REPORT = const(0x000100)
CONF_PARAMETERIZED_ACCESS = const(0x000020)
CONF_GET = const(0x000010)
CONF_SET = const(0x000008)
CONF_SELECTIVE_ACCESS = const(0x000004)
CONF_ACTION = const(0x000001)

# Names by bit position (position 0 is the most significant bit of the 24-bit string).
_CONF_NAMES = (
    "reserved-zero", "general-protection", "general-block-transfer", "read", "write",
    "unconfirmed-write", "delta-value-encoding", "reserved-seven", "attribute0-supported-with-set",
    "priority-mgmt-supported", "attribute0-supported-with-get", "block-transfer-with-get-or-read",
    "block-transfer-with-set-or-write", "block-transfer-with-action", "multiple-references",
    "information-report", "data-notification", "access", "parameterized-access", "get", "set",
    "selective-access", "event-notification", "action",
)


def conformance_names(bits):
    """Names of the conformance bits set in ``bits`` (24-bit int), in bit-string order."""
    return [_CONF_NAMES[p] for p in range(24) if bits & (1 << (23 - p))]


MECHANISM_NAMES = ("lowest-level", "lls", "hls", "hls-md5", "hls-sha1", "hls-gmac", "hls-sha256",
                   "hls-ecdsa")

_USER_DIAG = (
    "null", "no-reason-given", "application-context-name-not-supported",
    "calling-AP-title-not-recognized", "calling-AP-invocation-identifier-not-recognized",
    "calling-AE-qualifier-not-recognized", "calling-AE-invocation-identifier-not-recognized",
    "called-AP-title-not-recognized", "called-AP-invocation-identifier-not-recognized",
    "called-AE-qualifier-not-recognized", "called-AE-invocation-identifier-not-recognized",
    "authentication-mechanism-name-not-recognised", "authentication-mechanism-name-required",
    "authentication-failure", "authentication-required",
)
_PROVIDER_DIAG = ("null", "no-reason-given", "no-common-acse-version")


def diagnostic_name(source, code):
    """Name of a result-source-diagnostic, e.g. ``(1, 13)`` -> ``authentication-failure``."""
    table = _USER_DIAG if source == _SOURCE_USER else _PROVIDER_DIAG
    if 0 <= code < len(table):
        return table[code]
    return "diagnostic-%d" % code
