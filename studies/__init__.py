"""Studies: what is learned by running the model, the hardware and the flows many times.

Design-space exploration (:mod:`.explore`), the yield sweep (:mod:`.sweep`), online-training
runs and their sweeps over weight bits and endurance (:mod:`.online`, reported by
:mod:`.online_report`) and the benchmarks (:mod:`.bench`). A study may import every layer
below it (model, hardware, flows); nothing but the command line imports a study.
"""


def ignore_interrupts() -> None:
    """A worker process's initializer: Ctrl-C stops the parent, which ends its workers; the
    workers themselves print nothing (no traceback per worker)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
