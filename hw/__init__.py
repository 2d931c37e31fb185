"""The hardware (layer 2): Amaranth components and Verilog generation. May import the model's
contracts (:mod:`rrambnn.gen`), never the flows, the studies or the command line."""
