"""xDLMS service APDUs (IEC 62056-5-3): GET, SET, ACTION, SN READ/WRITE, notifications."""
