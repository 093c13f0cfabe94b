"""The runtime around the monitor core: outputs, display, and the programs people run."""
