"""Port sets that several components share, as :class:`wiring.Signature` subclasses.

* :class:`CoreSignature`: a classifier core behind the host link (the emulation twins of
  :mod:`rrambnn.hw.folded`, the macro periphery of :mod:`rrambnn.hw.macro`);
* :class:`TwinLayerSignature`: one layer of an emulation twin (:class:`rrambnn.hw.folded.FoldedLayer`,
  :class:`rrambnn.hw.sparse.SparseLayer`).

Both describe the component's side (``In`` = into the component), as a component's signature does.
"""

from __future__ import annotations

from amaranth import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rrambnn.hw.crossbar import _bits


class CoreSignature(wiring.Signature):
    """A classifier core: images of ``n_in`` bits in ``i``, results (:attr:`out_layout`: ``cls``
    of ``n_out`` classes, ``hit``) out of ``o``, cell and threshold writes (``wr_layout``, the
    core's own addressing) in ``wr``, and ``idle`` (no image in flight, no result waiting).

    Members
    -------
    i : ``In(stream.Signature(n_in))``
    o : ``Out(stream.Signature(out_layout))``
    wr : ``In(stream.Signature(wr_layout))``
    idle : ``Out(1)``
    """

    def __init__(self, n_in: int, n_out: int, wr_layout: data.Layout):
        for name, n in (("Image width", n_in), ("Number of classes", n_out)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise TypeError(f"{name} must be a positive integer, not {n!r}")
        if not isinstance(wr_layout, data.Layout):
            raise TypeError(f"Write layout must be a data.Layout, not {wr_layout!r}")
        self._n_in, self._n_out, self._wr_layout = n_in, n_out, wr_layout
        self._out_layout = data.StructLayout({"cls": _bits(n_out), "hit": 1})
        super().__init__({
            "i": In(stream.Signature(n_in)),
            "o": Out(stream.Signature(self._out_layout)),
            "wr": In(stream.Signature(wr_layout)),
            "idle": Out(1),
        })

    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def n_out(self) -> int:
        return self._n_out

    @property
    def wr_layout(self) -> data.Layout:
        return self._wr_layout

    @property
    def out_layout(self) -> data.StructLayout:
        """The result: ``cls`` (the class index) and ``hit`` (some output neuron fired)."""
        return self._out_layout

    def implemented_by(self, obj) -> bool:
        """Whether ``obj``'s signature has every member of this one (same flow, shape and
        initial value). It may have more: the macro periphery also has its crossbar port."""
        sig = getattr(obj, "signature", None)
        if not isinstance(sig, wiring.Signature):
            return False
        return all(name in sig.members and sig.members[name] == member for name, member in self.members.items())

    def __eq__(self, other):
        return (type(other) is type(self) and other.n_in == self.n_in and other.n_out == self.n_out
                and other.wr_layout == self.wr_layout)

    def __repr__(self):
        return f"CoreSignature({self.n_in}, {self.n_out}, {self.wr_layout!r})"


class TwinLayerSignature(wiring.Signature):
    """One layer of an emulation twin, ``n_in`` inputs and ``n_out`` neurons.

    Images in: ``x`` with ``start``; ``consumed`` when the layer has read (or copied) it.
    Result out: ``fires`` and ``margins`` (``S_j - theta_j``, ``mw`` signed bits each) held
    while ``valid``, released by ``take``. Cell writes (``cell_we``): bit ``cell_pos`` of word
    ``cell_word`` (``depth`` words of ``width`` bits) := ``cell_bit``; threshold writes
    (``thr_we``): lane ``thr_lane`` of group ``thr_group`` (``groups`` x ``lanes``) :=
    ``thr_value`` (``tw`` signed bits). Writes only while ``idle``."""

    def __init__(self, n_in: int, n_out: int, *, mw: int, depth: int, width: int, tw: int, groups: int,
                 lanes: int):
        self._params = (n_in, n_out, mw, depth, width, tw, groups, lanes)
        super().__init__({
            "x": In(n_in), "start": In(1), "consumed": Out(1), "idle": Out(1),
            "valid": Out(1), "take": In(1),
            "fires": Out(n_out), "margins": Out(n_out * mw),
            "cell_we": In(1), "cell_word": In(_bits(depth)), "cell_pos": In(_bits(width)),
            "cell_bit": In(1),
            "thr_we": In(1), "thr_group": In(_bits(groups)), "thr_lane": In(_bits(lanes)),
            "thr_value": In(signed(tw)),
        })

    def __eq__(self, other):
        return type(other) is type(self) and other._params == self._params

    def __repr__(self):
        n_in, n_out, mw, depth, width, tw, groups, lanes = self._params
        return (f"TwinLayerSignature({n_in}, {n_out}, mw={mw}, depth={depth}, width={width}, tw={tw}, "
                f"groups={groups}, lanes={lanes})")
