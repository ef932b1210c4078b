"""The ``phigate`` command line: one module per command group."""
