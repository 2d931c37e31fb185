"""The simulation flow (layer 3): the Verilator/cocotb runner, the testbenches and the checks
that run generated designs against the golden model. Imports hardware and model."""
