"""A-XDR encoding of DLMS data (IEC 62056-6-2)."""
