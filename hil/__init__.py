"""Hardware-in-the-loop emulator: leaking modules, transducers and their links.

``hil.scenario`` (TOML scenarios), ``hil.physics`` and ``hil.thermal`` (the gas),
``hil.sensors`` and ``hil.faults`` (transducers), ``hil.linkfaults`` (the byte
stream), ``hil.emulator`` (the whole, in-process), ``hil.truth``,
``hil.endpoints`` and ``hil.runner`` (pty, TCP, serial port, file).  See docs/hil.md.
"""
