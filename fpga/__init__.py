"""The board flow (layer 3): bitstream builds with the YoWASP toolchain, the emulation twin on a
board and the host side of its UART link. Imports hardware and model, never the simulation flow."""
