"""ACSE association APDUs (IEC 62056-5-3): AARQ/AARE, RLRQ/RLRE."""
