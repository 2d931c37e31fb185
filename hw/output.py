"""Output stages: the priority encoder of the reference chip, and argmax."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rrambnn.gen.network import OUTPUT_MODES
from rrambnn.hw.crossbar import _bits

OUTPUT_STAGES = OUTPUT_MODES  # one definition: the golden model's output modes


def check_output_stage(output) -> str:
    """The output stage's name, checked (every design with an output stage calls this)."""
    if output not in OUTPUT_STAGES:
        raise ValueError(f"Output stage must be 'priority' or 'argmax', not {output!r}")
    return output


def _check_n(n):
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise TypeError(f"Number of output neurons must be a positive integer, not {n!r}")


class PriorityEncoder(wiring.Component):
    """``index`` = lowest j with ``fires[j]``; ``hit`` = any fires (index 0 when none).

    Up to :attr:`CHAIN` inputs a chain of multiplexers (smallest; the output stage of the
    reference chip); above, a balanced tree whose depth grows with log2(n): the weight-update
    controller's row encoder has hundreds of inputs, and a chain that long is a critical path
    (and deeper than Yosys's ECP5 flow can walk)."""

    CHAIN = 16

    def __init__(self, n: int):
        _check_n(n)
        self.n = n
        super().__init__({"fires": In(n), "index": Out(_bits(n)), "hit": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.hit.eq(self.fires.any())
        if self.n <= self.CHAIN:
            for j in reversed(range(self.n)):  # the last assignment wins: lowest index
                with m.If(self.fires[j]):
                    m.d.comb += self.index.eq(j)
            return m

        def tree(lo: int, hi: int):
            """(any, index) of fires[lo:hi]; the index counts from 0 (lo is added by the caller)."""
            if hi - lo <= 2:
                return self.fires[lo:hi].any(), Mux(self.fires[lo], 0, hi - lo - 1)
            mid = lo + (hi - lo + 1) // 2
            a_any, a_idx = tree(lo, mid)
            b_any, b_idx = tree(mid, hi)
            idx = Signal(_bits(hi - lo), name=f"prio_{lo}_{hi}")
            m.d.comb += idx.eq(Mux(a_any, a_idx, (mid - lo) + b_idx))
            return a_any | b_any, idx

        any_, idx = tree(0, self.n)
        m.d.comb += self.index.eq(Mux(any_, idx, 0))
        return m


class Argmax(wiring.Component):
    """``index`` = argmax_j of the signed ``scores`` (``width`` bits each), lowest j on ties.

    A balanced comparison tree whose left operand always holds the lower indices,
    so a strict ``>`` keeps the lowest index on ties.
    """

    def __init__(self, n: int, width: int):
        _check_n(n)
        if not isinstance(width, int) or width < 2:
            raise TypeError(f"Score width must be an integer of at least 2, not {width!r}")
        self.n, self.width = n, width
        super().__init__({"scores": In(n * width), "index": Out(_bits(n))})

    def elaborate(self, platform):
        m = Module()
        iw = _bits(self.n)
        level = []
        for j in range(self.n):
            s = self.scores[j * self.width:(j + 1) * self.width].as_signed()
            level.append((s, j))
        depth = 0
        nodes = [(s, j) for s, j in level]
        while len(nodes) > 1:
            nxt = []
            for k in range(0, len(nodes) - 1, 2):
                (sa, ia), (sb, ib) = nodes[k], nodes[k + 1]
                take_b = Signal(name=f"take_b_l{depth}_{k // 2}")
                s = Signal(signed(self.width), name=f"best_l{depth}_{k // 2}")
                i = Signal(iw, name=f"idx_l{depth}_{k // 2}")
                m.d.comb += [take_b.eq(sb > sa), s.eq(Mux(take_b, sb, sa)), i.eq(Mux(take_b, ib, ia))]
                nxt.append((s, i))
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            nodes = nxt
            depth += 1
        m.d.comb += self.index.eq(nodes[0][1])
        return m


def attach_output_stage(m, mode: str, last):
    """Add the output stage for ``mode`` to module ``m`` fed by layer ``last`` (its ``fires`` and
    ``margins``, ``n_out`` and ``mw``); return the class index."""
    if mode == "priority":
        m.submodules.output_stage = enc = PriorityEncoder(last.n_out)
        m.d.comb += enc.fires.eq(last.fires)
        return enc.index
    m.submodules.output_stage = amax = Argmax(last.n_out, last.mw)
    m.d.comb += amax.scores.eq(last.margins)
    return amax.index

