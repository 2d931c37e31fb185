"""Analog reads: a device profile, each chip's frozen conductance map, per-read noise.

Until now every read was the digital twin ``S_j = sum_i x_i w_ij`` with ``w = +-1``. A real
column sums currents: cell (i, j) passes ``G_ij * V`` when its row is driven, the reference
(one per row, at the nominal ``(G_LRS + G_HRS) / 2``) is subtracted, and the sense stage
compares the difference with the neuron's threshold. In units of half the nominal LRS-HRS
difference, ``dG = (G_LRS - G_HRS) / 2``, an ideal cell contributes exactly +-1, so the ideal
analog read *is* the digital twin, whatever the on/off ratio.

**Integer currents.** Everything the sense stage sees is an integer in units of
``2^-FRAC`` of ``dG * V`` (:data:`FRAC` = 8): the golden model and a Verilog model of the
crossbar can agree bit for bit. A chip's read of column ``j`` of one layer is

    I_j = sum_i x_i q_ij + off_j + n_j          and the neuron fires iff I_j >= theta_j,

``theta_j = 2^FRAC * t_j`` for the network's integer threshold ``t_j`` (calibration may move it
to any integer). The parts:

* ``q_ij = round(2^FRAC * (g_ij - g_ref))``, frozen per chip (:class:`ChipMap`): ``g_ij`` is the
  cell's conductance in units of ``dG`` after device-to-device variation (lognormal: ``G =
  G_nom * exp(sigma * z)``, median at the nominal value; or normal: ``G_nom * (1 + sigma * z)``,
  at least 0), first-order IR drop (``G / (1 + G * R_wire * d)`` with ``d`` the wire segments
  from the row driver to the cell and from the cell to the sense stage, inside its 128x128 tile:
  ``(col + 1) + (rows - row)``; the attenuation of a cell does not depend on the other cells'
  currents, which is what "first order" leaves out) and drift (``G * (t / t0)^-nu`` for a read
  time ``t > t0``, ``nu ~ N(nu_mean, nu_sigma)`` per cell, at least 0). Stuck cells (the yield)
  hold their stuck state. The reference is nominal but for drift: no variation or IR drop, and
  it drifts with the mean exponent (reference cells of the same device), so that drift costs
  through its spread and through the cells' unequal shares of the sum.
* ``off_j = round(2^FRAC * sigma_off * z_j)``: the sense stage's offset, frozen per chip.
* ``n_j`` the read noise: every cell's current fluctuates with relative sigma ``sigma_r`` per
  read; their sum over the driven rows is normal with variance ``sigma_r^2 sum_i x_i g_ij^2``,
  so one draw per column and read gives that distribution exactly (a per-cell draw would cost
  ``rows`` times as much):
  ``n_j = (Z[u >> (32 - ZBITS)] * c * isqrt(v_j)) >> (ZFRAC + CFRAC)`` with ``v_j = sum_i x_i
  g2_ij``, ``g2_ij = round(2^(2 FRAC) g_ij^2)``, ``c = round(2^CFRAC sigma_r)``, ``Z`` the table of
  standard normal quantiles at the midpoints of ``2^ZBITS`` equal bins (``2^-ZFRAC`` units,
  tails cut at +-3.3 sigma), ``u`` the counter-based draw :func:`noise_words` keyed by (chip seed,
  image index, layer, column): batching, order and idle cycles change nothing.

Everything random comes from the chip seed. The profile's ``ideal`` has no effect on: q = +-256,
no offset, no noise, and every network answers exactly as the digital twin (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from statistics import NormalDist

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import TOML_LIMIT, read_toml, shown, toml_number
from rrambnn.gen import crossbar
from rrambnn.gen import device as dev
from rrambnn.gen.online_nbit import mix32
from rrambnn.gen.network import BinaryNetwork, priority_encode, score

FRAC = 8  # fractional bits of a column current: 2^-8 of one ideal cell
ZBITS = 10  # the noise table's index bits
ZFRAC = 10  # ... its values' fractional bits
CFRAC = 12  # the read-noise sigma's fractional bits
TILE_ROWS = TILE_COLS = 128  # the IR-drop geometry: each 128x128 array has its own lines

PROFILE_DIR = Path(__file__).with_name("devices")
PROFILES = ("ideal", "mild", "realistic", "harsh", "aihwkit-pcm")

# (section, key, lowest allowed, whether the lowest is allowed): every number a profile must give
_NUMBERS = (
    ("conductance", "g_lrs_us", 0.0, False), ("conductance", "g_hrs_us", 0.0, False),
    ("conductance", "read_voltage_v", 0.0, False),
    ("variation", "sigma_lrs", 0.0, True), ("variation", "sigma_hrs", 0.0, True),
    ("read_noise", "sigma", 0.0, True), ("sense_offset", "sigma", 0.0, True),
    ("ir_drop", "wire_ohm_per_cell", 0.0, True),
    ("drift", "nu_mean", 0.0, True), ("drift", "nu_sigma", 0.0, True), ("drift", "t0_s", 0.0, False),
    ("drift", "read_time_s", 0.0, False),
    ("faults", "yield", 0.0, True),
)


@dataclass(frozen=True)
class Profile:
    """One device profile (a TOML file): conductances, spreads, noise, offsets, wires, drift."""

    name: str = "ideal"
    g_lrs_us: float = 10.0  # as the ideal profile's
    g_hrs_us: float = 0.58824
    read_voltage_v: float = 0.2
    distribution: str = "lognormal"
    sigma_lrs: float = 0.0
    sigma_hrs: float = 0.0
    read_noise: float = 0.0
    offset: float = 0.0  # sense offset sigma in units of dG * V
    wire_ohm: float = 0.0
    nu_mean: float = 0.0
    nu_sigma: float = 0.0
    t0_s: float = 1.0
    read_time_s: float = 1.0
    yield_: float = 1.0
    sources: dict = field(default_factory=dict, compare=False)
    path: str = field(default="", compare=False)

    @property
    def ideal(self) -> bool:
        """No effect on the reads: the analog read equals the digital twin."""
        drift = self.read_time_s > self.t0_s and (self.nu_mean > 0 or self.nu_sigma > 0)
        return not (self.sigma_lrs or self.sigma_hrs or self.read_noise or self.offset or self.wire_ohm or drift
                    or self.yield_ < 1)

    @property
    def ratio(self) -> float:
        return self.g_lrs_us / self.g_hrs_us

    def scaled(self, **kw) -> "Profile":
        """This profile with some values replaced (the Monte Carlo sweeps), checked again."""
        p = Profile(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **kw})
        p.check(p.path or p.name)
        return p

    def check(self, where: str):
        """Every value in its range (one error line naming the key)."""
        for key, lo, strict in (("g_lrs_us", 0, True), ("g_hrs_us", 0, True), ("read_voltage_v", 0, True),
                                ("sigma_lrs", 0, False), ("sigma_hrs", 0, False), ("read_noise", 0, False),
                                ("offset", 0, False), ("wire_ohm", 0, False), ("nu_mean", 0, False),
                                ("nu_sigma", 0, False), ("t0_s", 0, True), ("read_time_s", 0, True)):
            v = getattr(self, key)
            if not _number(v) or (v <= lo if strict else v < lo):
                raise RrambnnError(f"{where}: {key} must be a number {'>' if strict else '>='} {lo} and at most "
                                   f"{TOML_LIMIT:g}, "
                                   f"not {shown(v)}")
        if not self.g_lrs_us > self.g_hrs_us:
            raise RrambnnError(f"{where}: g_lrs_us ({self.g_lrs_us}) must exceed g_hrs_us ({self.g_hrs_us})")
        if self.distribution not in ("lognormal", "normal"):
            raise RrambnnError(f"{where}: variation.distribution must be 'lognormal' or 'normal', "
                               f"not {self.distribution!r}")
        if not (_number(self.yield_) and 0 <= self.yield_ <= 1):
            raise RrambnnError(f"{where}: faults.yield must be a number from 0 to 1, not {self.yield_!r}")
        for key in ("sigma_lrs", "sigma_hrs", "read_noise"):
            if getattr(self, key) > 2:
                raise RrambnnError(f"{where}: {key} is a relative sigma; {getattr(self, key)} (over 200%) is not "
                                   f"a device")
        for key in ("nu_mean", "nu_sigma"):
            if getattr(self, key) > 1:
                raise RrambnnError(f"{where}: drift.{key} is {getattr(self, key)}; drift exponents above 1 are not a "
                                   f"device (RRAM and PCM: 0.001 to 0.1)")
        if self.offset > 64:
            raise RrambnnError(f"{where}: sense_offset.sigma is {self.offset} cells; over 64 is not a sense stage")
        if self.wire_ohm * self.g_lrs_us * 1e-6 * (TILE_ROWS + TILE_COLS) > 10:
            raise RrambnnError(f"{where}: ir_drop.wire_ohm_per_cell {self.wire_ohm} drops the far cell of a tile "
                               f"below a tenth of its current; not a first-order effect")

    def values(self) -> tuple:
        """The profile's values as (name, value) pairs (sources and path left out): what a
        configuration or a testbench carries to rebuild it (``Profile(**dict(pairs))``)."""
        return tuple((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in ("sources", "path"))

    def describe(self) -> dict:
        d = dict(self.values())
        d["yield"] = d.pop("yield_")
        return {**d, "on_off_ratio": round(self.ratio, 3), "ideal": self.ideal, "path": self.path}


def _number(v) -> bool:
    return toml_number(v)


def load_profile(spec: str | Path = "ideal") -> Profile:
    """A device profile by name (:data:`PROFILES`) or path: every value present and in range,
    one error line naming the key otherwise."""
    d, path, shipped = read_toml(spec, PROFILES, PROFILE_DIR, "device profile")
    where = str(path)
    known = {f"{s}.{k}" for s, k, *_ in _NUMBERS}
    for section, table in d.items():  # a misspelt key first: it explains a missing one
        if isinstance(table, dict):
            if section not in {s for s, *_ in _NUMBERS}:
                raise RrambnnError(f"{where}: unknown table [{section}]")
            for key in table:
                if key not in ("source", "distribution") and f"{section}.{key}" not in known:
                    raise RrambnnError(f"{where}: unknown key {section}.{key} (units are part of the key names)")
        elif section not in ("name", "description"):
            raise RrambnnError(f"{where}: unknown key {section}")
    values, sources = {}, {}
    for section, key, _, _ in _NUMBERS:
        table = d.get(section)
        if not isinstance(table, dict):
            raise RrambnnError(f"{where}: the device profile has no [{section}] table")
        if key not in table:
            raise RrambnnError(f"{where}: {section}.{key} is missing")
        v = table[key]
        if not _number(v):
            raise RrambnnError(f"{where}: {section}.{key} must be a finite number of at most {TOML_LIMIT:g}, "
                               f"not {shown(v)}")
        values[f"{section}.{key}"] = float(v)
        src = table.get("source")
        if not isinstance(src, str) or not src.strip():
            raise RrambnnError(f"{where}: [{section}] needs a source (where its numbers come from)")
        sources[section] = src
    dist = d.get("variation", {}).get("distribution", "lognormal")
    p = Profile(name=str(d.get("name", path.stem)), g_lrs_us=values["conductance.g_lrs_us"],
                g_hrs_us=values["conductance.g_hrs_us"], read_voltage_v=values["conductance.read_voltage_v"],
                distribution=dist, sigma_lrs=values["variation.sigma_lrs"], sigma_hrs=values["variation.sigma_hrs"],
                read_noise=values["read_noise.sigma"], offset=values["sense_offset.sigma"],
                wire_ohm=values["ir_drop.wire_ohm_per_cell"], nu_mean=values["drift.nu_mean"],
                nu_sigma=values["drift.nu_sigma"], t0_s=values["drift.t0_s"],
                read_time_s=values["drift.read_time_s"], yield_=values["faults.yield"], sources=sources,
                path=f"gen/devices/{path.name}" if shipped else str(path))
    p.check(where)
    return p


# -- the noise generator ------------------------------------------------------------

def _normal_table() -> np.ndarray:
    nd = NormalDist()
    n = 1 << ZBITS
    return np.array([round(nd.inv_cdf((k + 0.5) / n) * (1 << ZFRAC)) for k in range(n)], np.int64)


NORMAL = _normal_table()


def noise_words(seed: int, images: np.ndarray, layer: int, n_cols: int) -> np.ndarray:
    """The read-noise draws (uint32, (len(images), n_cols)) of chip ``seed``: one per image
    index, layer and column, from the finaliser of the training draws (:func:`mix32`)."""
    key = mix32(np.uint32(seed & 0xFFFFFFFF) ^ np.uint32(0x5EED0A11))
    img = mix32(key ^ np.asarray(images, np.uint32))[:, None]
    col = np.uint32(layer << 16) ^ np.arange(n_cols, dtype=np.uint32)[None, :]
    return mix32(img ^ col)


def isqrt(v: np.ndarray) -> np.ndarray:
    """Floor square root of non-negative int64 values, exactly (floats only as a first guess)."""
    v = np.asarray(v, np.int64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r -= (r * r > v)
    r += ((r + 1) * (r + 1) <= v)
    return r


# -- one chip -----------------------------------------------------------------------------

@dataclass
class LayerMap:
    """One layer of a chip. Each cell has a current for each state (its own LRS and HRS
    devices' variation, its position's IR drop, its drift exponent): ``q1``/``q0`` (n_in,
    n_out) int64 in 2^-FRAC units, and their squared conductances ``g21``/``g20`` (2^-2FRAC
    units, for the read noise); ``q``/``g2`` those of the cells as they are held now."""

    q1: np.ndarray
    q0: np.ndarray
    g21: np.ndarray
    g20: np.ndarray
    offset: np.ndarray  # (n_out,) int64: the sense stage's offset per column
    cells: np.ndarray  # (n_in, n_out) uint8: the state each cell holds

    @property
    def q(self) -> np.ndarray:
        return np.where(self.cells == 1, self.q1, self.q0)

    @property
    def g2(self) -> np.ndarray:
        return np.where(self.cells == 1, self.g21, self.g20)


@dataclass
class ChipMap:
    """A chip's frozen analog state: per layer the cell currents, their squares and the sense
    offsets; ``seed`` also keys its read noise."""

    profile: Profile
    seed: int
    layers: list[LayerMap]

    def __post_init__(self):
        self._held = [(m.q, m.g2) for m in self.layers]  # the reads' matrices, for the cells held

    def hold(self, cells: list[np.ndarray]):
        """The cells the arrays hold now (after programming): each cell reads with its own
        device's current in its new state."""
        for m, c in zip(self.layers, cells):
            m.cells = np.asarray(c, np.uint8)
        self.__post_init__()

    def hold_layer(self, k: int, cells: np.ndarray):
        """:meth:`hold` for layer ``k`` alone (online training rewrites a few layers a step)."""
        m = self.layers[k]
        m.cells = np.asarray(cells, np.uint8)
        self._held[k] = (m.q, m.g2)


def _positions(n_in: int, n_out: int) -> np.ndarray:
    """Wire segments from each cell's row driver and to its sense stage, inside its tile."""
    r = np.arange(n_in) % TILE_ROWS
    rows_in_tile = np.minimum(TILE_ROWS, n_in - (np.arange(n_in) // TILE_ROWS) * TILE_ROWS)
    c = np.arange(n_out) % TILE_COLS
    return (c[None, :] + 1) + (rows_in_tile - r)[:, None]


def chip_map(cells: list[np.ndarray], profile: Profile, seed: int) -> ChipMap:
    """The chip ``seed`` of ``profile`` holding ``cells`` (per layer (n_in, n_out), 1 = LRS).
    Per cell, in this order from the chip's generator: the LRS device's and the HRS device's
    variation draws, then the drift exponent; per column the sense offset."""
    p = profile
    dg = (p.g_lrs_us - p.g_hrs_us) / 2
    g_ref = (p.g_lrs_us + p.g_hrs_us) / 2 / dg * _drift(p, p.nu_mean)
    layers = []
    for k, c in enumerate(cells):
        c = np.asarray(c, np.uint8)
        rng = np.random.default_rng([seed & 0xFFFFFFFF, k, 0xA11A])
        z1, z0 = rng.standard_normal(c.shape), rng.standard_normal(c.shape)
        nu = np.maximum(p.nu_mean + p.nu_sigma * rng.standard_normal(c.shape), 0)
        off = rng.standard_normal(c.shape[1])
        both = []
        for g_nom, sigma, z in ((p.g_lrs_us, p.sigma_lrs, z1), (p.g_hrs_us, p.sigma_hrs, z0)):
            g = g_nom * np.exp(sigma * z) if p.distribution == "lognormal" else np.maximum(g_nom * (1 + sigma * z), 0)
            if p.wire_ohm:
                g = g / (1 + g * 1e-6 * p.wire_ohm * _positions(*c.shape))
            g_units = g * _drift(p, nu) / dg
            both.append((np.round((g_units - g_ref) * (1 << FRAC)).astype(np.int64),
                         np.round(g_units ** 2 * (1 << (2 * FRAC))).astype(np.int64)))
        (q1, g21), (q0, g20) = both
        if p.ideal:  # exactly +-1 cell (the float path above rounds to it too; this says so)
            q1, q0 = np.full(c.shape, 1 << FRAC, np.int64), np.full(c.shape, -(1 << FRAC), np.int64)
        layers.append(LayerMap(q1, q0, g21, g20, np.round(p.offset * off * (1 << FRAC)).astype(np.int64), c))
    return ChipMap(p, seed, layers)


def _drift(p: Profile, nu):
    """The factor (t / t0)^-nu at the profile's read time (1 before t0)."""
    return (p.read_time_s / p.t0_s) ** -np.asarray(nu) if p.read_time_s > p.t0_s else np.ones_like(nu, float)


def check_binary(net):
    """``net`` itself when it is a binary network (what the analog model reads); one error line
    otherwise."""
    if not isinstance(net, BinaryNetwork):
        raise RrambnnError("--device here models the binary chip's analog reads (its Verilog crossbar model); "
                           "multi-bit and CNN networks take --device on eval, sweep variation and explore (golden "
                           "model)")
    return net


def held_cells(cells, faults) -> list[np.ndarray]:
    """The cells a chip holds: stuck ones (fault maps: 1 stuck at HRS, 2 at LRS) at their state."""
    return [np.where(f == dev.STUCK_LRS, 1, np.where(f == dev.STUCK_HRS, 0, c)).astype(np.uint8)
            for c, f in zip(cells, faults)]


def faulty_cells(net: BinaryNetwork, profile: Profile, seed: int) -> list[np.ndarray]:
    """The network's cells on chip ``seed``: stuck cells (the profile's yield) hold their state."""
    cells = net.cells
    if profile.yield_ >= 1:
        return cells
    return held_cells(cells, dev.device_faults(net.arch, dev.DeviceParams(yield_=profile.yield_, seed=seed)))


def read(x: np.ndarray, chip: ChipMap, layer: int, images: np.ndarray) -> np.ndarray:
    """Column currents (N, n_out) int64 of ``layer`` for inputs ``x`` (N, n_in) in {0, 1},
    ``images`` the image indices that key the read noise."""
    m = chip.layers[layer]
    q, g2 = chip._held[layer]
    return _sensed(chip, x, q, g2, m.offset, images, layer)


def _sensed(chip: ChipMap, x, q, g2, offset, images, key: int) -> np.ndarray:
    """Lines driven by ``x`` (N, n) through currents ``q`` (n, m) and squared conductances
    ``g2``, sensed with ``offset`` and one read-noise draw per line keyed by (chip, image, ``key``,
    line)."""
    n = q.shape[0]
    xmax = int(np.abs(x).max(initial=1))
    s = crossbar.read_int(x, q, bound=n * xmax * int(np.abs(q).max(initial=1))) + offset
    sigma = chip.profile.read_noise
    if sigma:
        bits = xmax == 1 and np.asarray(x).min(initial=0) >= 0  # {0, 1} inputs: x^2 = x
        v = crossbar.read_int(x if bits else np.asarray(x, np.int64) ** 2, g2,
                              bound=n * xmax * xmax * int(g2.max(initial=1)))
        z = NORMAL[noise_words(chip.seed, images, key, q.shape[1]) >> np.uint32(32 - ZBITS)]
        s = s + ((z * round(sigma * (1 << CFRAC)) * isqrt(v)) >> (ZFRAC + CFRAC))
    return s


TRANSPOSED_KEY = 0x80  # the noise key of layer k's transposed read: TRANSPOSED_KEY + k


def row_offsets(chip: ChipMap) -> list[np.ndarray]:
    """Per layer, the offsets (n_in,) of the sense stages on the rows (the transposed read's),
    frozen per chip, from their own generator (the forward maps do not move)."""
    p = chip.profile
    return [np.round(p.offset * np.random.default_rng([chip.seed & 0xFFFFFFFF, k, 0xA11B]).standard_normal(
        m.q1.shape[0]) * (1 << FRAC)).astype(np.int64) for k, m in enumerate(chip.layers)]


def read_transposed(e: np.ndarray, chip: ChipMap, layer: int, images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The transposed read of ``layer``: signed column inputs ``e`` (N, n_out) drive the bit
    lines and every row senses ``sum_j e_j q_ij`` with its own offset (``offsets``, see
    :func:`row_offsets`) and read noise of variance ``sigma_r^2 sum_j e_j^2 g2_ij`` (N, n_in)."""
    q, g2 = chip._held[layer]
    return _sensed(chip, np.asarray(e, np.int64), q.T, g2.T, offsets, images, TRANSPOSED_KEY + layer)


def thresholds(net) -> list[np.ndarray]:
    """The network's thresholds in current units (what an uncalibrated chip compares with; any
    network, multi-level thresholds too)."""
    return [t.astype(np.int64) << FRAC for t in net.thresholds]


def forward(net: BinaryNetwork, x: np.ndarray, chip: ChipMap, *, theta=None, first_image: int = 0,
            image_ids=None, chunk: int = 4096, trace: bool = False):
    """The analog chip on input bits ``x`` (N, n_in): (priority, argmax, hit), or with ``trace``
    also every layer's currents and activations. ``theta``: per-layer thresholds in current
    units (default: the network's, :func:`thresholds`); image ``i`` of ``x`` is read as image
    ``first_image + i`` (the noise key), or as ``image_ids[i]``."""
    theta = thresholds(net) if theta is None else theta
    ids = np.arange(first_image, first_image + len(x), dtype=np.int64) if image_ids is None else \
        np.asarray(image_ids, np.int64)
    outs = []
    for i in range(0, max(len(x), 1), chunk):
        a = np.asarray(x[i:i + chunk], np.uint8)
        images = ids[i:i + chunk]
        sums, acts = [], []
        for k in range(len(chip.layers)):
            s = read(a, chip, k, images)
            fires = s >= theta[k]
            sums.append(s)
            acts.append(fires.astype(np.uint8))
            a = acts[-1]
        prio, hit = priority_encode(fires)
        outs.append((prio, (s - theta[-1]).argmax(axis=1), hit, sums, acts))
    prio, amax, hit = (np.concatenate([o[j] for o in outs]) for j in range(3))
    if not trace:
        return prio, amax, hit
    n = len(chip.layers)
    return prio, amax, hit, [np.concatenate([o[3][k] for o in outs]) for k in range(n)], \
        [np.concatenate([o[4][k] for o in outs]) for k in range(n)]


def accuracy(net: BinaryNetwork, x, labels, chip: ChipMap, *, theta=None, first_image: int = 0) -> dict:
    """Both output stages of the analog chip; a priority reject counts as wrong."""
    return score(*forward(net, x, chip, theta=theta, first_image=first_image), labels)


# -- calibration ------------------------------------------------------------------------

CAL_IMAGE_BASE = 1 << 30  # calibration reads use image indices from here (noise keys apart from the test set)


def calibrate(net: BinaryNetwork, chip: ChipMap, x_cal: np.ndarray) -> list[np.ndarray]:
    """Per-chip thresholds fitted from a calibration set read through the chip, layer by layer:
    for every neuron the threshold (in current units) at which the chip's decisions on the
    calibration images agree most often with the ideal network's (ties: the one nearest the
    programmed threshold). What a host can do through the threshold-programming path with the
    chip's activations visible (one read of the calibration set per candidate threshold, or a
    sweep of the sense reference); here computed from the currents in one pass."""
    ideal = net.forward(x_cal, trace=True)
    theta = thresholds(net)
    images = CAL_IMAGE_BASE + np.arange(len(x_cal), dtype=np.int64)
    a = np.asarray(x_cal, np.uint8)
    out = []
    for k in range(len(chip.layers)):
        s = read(a, chip, k, images)
        want = ideal.acts[k].astype(bool)
        out.append(_best_thresholds(s, want, theta[k]))
        a = (s >= out[-1]).astype(np.uint8)
    return out


def sort_columns(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's order and sorted values (what :func:`_best_thresholds` fits on; sort once
    for the several levels of one sense stage)."""
    order = np.argsort(s, axis=0, kind="stable")
    return order, np.take_along_axis(s, order, axis=0)


def _best_thresholds(s: np.ndarray, want: np.ndarray, prior: np.ndarray, presorted=None) -> np.ndarray:
    """Per column, the threshold t maximising #{s >= t and want} + #{s < t and not want}
    (``presorted``: :func:`sort_columns` of ``s``)."""
    n, m = s.shape
    order, ss = sort_columns(s) if presorted is None else presorted
    ww = np.take_along_axis(want, order, axis=0)
    # threshold just above sorted value k-1 (k = 0..n): below it k values, those not wanted agree
    below_no = np.vstack([np.zeros((1, m), np.int64), np.cumsum(~ww, axis=0)])
    above_yes = ww.sum(axis=0) - np.vstack([np.zeros((1, m), np.int64), np.cumsum(ww, axis=0)])
    agree = below_no + above_yes  # (n + 1, m)
    # the thresholds that put exactly the k smallest values below: (ss[k-1], ss[k]]; the one
    # nearest the programmed threshold (an ideal chip keeps its thresholds)
    big = np.iinfo(np.int64).max // 4
    lo = np.vstack([np.full((1, m), -big), ss + 1])
    hi = np.vstack([ss, np.full((1, m), big)])
    cand = np.clip(prior[None, :], lo, hi)
    agree = np.where(lo > hi, -1, agree)  # values tied with ss[k-1] cannot be split
    best = agree.max(axis=0)
    dist = np.abs(cand - prior[None, :])
    pick = np.where(agree == best[None, :], dist, big).argmin(axis=0)
    return cand[pick, np.arange(m)]
