"""DLMS/COSEM: HDLC link (IEC 62056-46), A-XDR (IEC 62056-6-2), ACSE and xDLMS APDUs
(IEC 62056-5-3), security suite 0, the TCP wrapper (IEC 62056-47), COSEM interface classes and
the client session; the meter's side of ACSE and xDLMS in each package's ``server`` module."""
