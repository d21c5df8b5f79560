"""The meter reader itself: reading plans, the console, the probe and the device's services."""
