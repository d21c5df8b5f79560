"""The append-only reading store on a flash filesystem (LittleFS)."""
