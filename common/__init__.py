"""Pieces shared by the board package, the emulator and the harness."""
