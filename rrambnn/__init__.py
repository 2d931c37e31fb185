"""rrambnn: generator for RRAM-crossbar binary neural network processors."""

__version__ = "0.1.0"
