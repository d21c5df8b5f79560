"""IEC 62056-21: optical sign-on, identification and mode E (signon), data readout modes A-D and
programming mode (readout, loaded only when an IEC meter is read)."""
