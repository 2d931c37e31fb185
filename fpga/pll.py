"""PLL settings for the boards' clocks (the same searches as icestorm's ``icepll`` and
prjtrellis' ``ecppll``), and the Amaranth instances that use them."""

from __future__ import annotations

import dataclasses

from amaranth import Instance

from rrambnn.errors import RrambnnError


@dataclasses.dataclass(frozen=True)
class PLLSetting:
    params: dict
    f_out: float  # Hz, what the PLL really makes


def ice40_pll(f_in: float, f_want: float) -> PLLSetting:
    """SB_PLL40 in SIMPLE feedback: f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ), with the
    phase detector at 10-133 MHz and the VCO at 533-1066 MHz."""
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f_out = f_vco / 2 ** divq
                if best is None or abs(f_out - f_want) < abs(best[0] - f_want):
                    best = (f_out, divr, divf, divq, f_pfd)
    if best is None or not 16e6 <= best[0] <= 275e6:
        raise RrambnnError(f"the iCE40 PLL cannot make {f_want / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    f_out, divr, divf, divq, f_pfd = best
    filter_range = next(i for i, top in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 1e12), 1) if f_pfd < top)
    return PLLSetting({"FEEDBACK_PATH": "SIMPLE", "DIVR": divr, "DIVF": divf, "DIVQ": divq,
                       "FILTER_RANGE": filter_range}, f_out)


def ecp5_pll(f_in: float, f_want: float) -> PLLSetting:
    """EHXPLLL with CLKOP feedback: f_out = f_in * CLKFB_DIV / CLKI_DIV, the VCO
    (f_out * CLKOP_DIV) at 400-800 MHz, the phase detector at least 3.125 MHz."""
    best = None
    for clki in range(1, 129):
        f_pfd = f_in / clki
        if f_pfd < 3.125e6 or f_pfd > 400e6:
            continue
        for clkfb in range(1, 81):
            f_out = f_pfd * clkfb
            if not 3.125e6 <= f_out <= 400e6:
                continue
            for clkop in range(1, 129):
                f_vco = f_out * clkop
                if 400e6 <= f_vco <= 800e6:
                    if best is None or abs(f_out - f_want) < abs(best[0] - f_want):
                        best = (f_out, clki, clkfb, clkop)
                    break
    if best is None:
        raise RrambnnError(f"the ECP5 PLL cannot make {f_want / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    f_out, clki, clkfb, clkop = best
    return PLLSetting({"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop, "CLKOP_CPHASE": clkop - 1}, f_out)


def ice40_pll_instance(setting: PLLSetting, pad, clk_out, lock) -> Instance:
    p = setting.params
    return Instance("SB_PLL40_PAD", p_FEEDBACK_PATH=p["FEEDBACK_PATH"], p_DIVR=p["DIVR"], p_DIVF=p["DIVF"],
                    p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
                    i_PACKAGEPIN=pad, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk_out, o_LOCK=lock)


def ecp5_pll_instance(setting: PLLSetting, clk_in, clk_out, lock) -> Instance:
    p = setting.params
    return Instance(
        "EHXPLLL",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
        p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        p_CLKFB_DIV=p["CLKFB_DIV"],
        i_CLKI=clk_in, i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
        i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        o_CLKOP=clk_out, o_LOCK=lock,
    )
