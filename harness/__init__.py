"""The closed-loop harness: the emulator and the monitor together, off the board.

``simulate`` runs a scenario through the emulator and the monitor in one process,
``scoring`` scores the run against the emulator's truth, ``derive`` derives a
monitor configuration from a scenario, ``synth`` makes synthetic cabins without
the emulator, and ``commands`` holds the ``demo``, ``simulate`` and ``emulate``
subcommands.  It imports both ``firmware_host`` and ``hil``; ``firmware_host``
imports it only when one of those subcommands runs.
"""
