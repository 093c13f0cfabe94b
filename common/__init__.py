"""Pieces shared by the monitor, the emulator and the harness: gas laws, errors, TOML tables.

Imports nothing from ``drivers``, ``firmware_host``, ``hil`` or ``harness``.
"""
