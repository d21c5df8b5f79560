"""Laptop-side tools for optoread: simulated meters, transports, the command line."""
