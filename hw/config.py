"""The chip description: :class:`ChipConfig` (every generator parameter of a chip, hashable; the
arrays' contents and fault maps travel apart) and the designs of a weights file
(:func:`chip_design`, :func:`training_design`), with the size limit every chip is checked
against before it is built. :mod:`rrambnn.hw.verilog` turns a network and its ChipConfig into
Verilog."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rrambnn.errors import RrambnnError
from rrambnn.gen.device import DeviceParams
from rrambnn.gen.sliced import SlicedNetwork
from rrambnn.hw.layer import check_tile
from rrambnn.hw.output import check_output_stage
from rrambnn.hw.programmer import Programmer
from rrambnn.hw.updater import WeightUpdater


@dataclass(frozen=True)
class ChipConfig:
    """Generator parameters of the chip (hashable; arrays such as fault maps travel apart)."""

    tile: tuple[int, int] = (128, 128)
    pipeline: bool = False
    output: str = "priority"
    debug: bool = False
    word: int = 16  # programming command width, cells
    retries: int = 3  # write-verify retries after the first pulse
    pulse_cycles: int = 5  # 50 ns at the chip's 100 MHz
    device: DeviceParams = DeviceParams()
    update_bits: int = 1  # > 1: multi-bit weights in planes + the weight-update controller
    step_bits: int = 2  # rank-1 step width of the weight-update controller
    wbits: int = 1  # > 1: multi-bit inference weights, one computing plane of arrays per bit
    abits: int = 1  # > 1: multi-bit activations (bit-serial layers, threshold ramps)
    ternary: bool = False  # 2-bit weights -1/0/+1, two planes of equal weight (rrambnn.gen.sliced)
    restore: bool = False  # the weight-update controller restores a weight whose write failed
    self_training: bool = False  # the training chip with its trainer (rrambnn.hw.trainer)
    analog: tuple = ()  # analog reads: a device profile's values as (name, value) pairs (rrambnn.gen.analog)
    analog_seed: int = 0  # ... and the chip's seed (its conductance map, offsets and read noise)

    @property
    def profile(self):
        """The analog device profile, or None (digital reads)."""
        from rrambnn.gen.analog import Profile
        return Profile(**dict(self.analog)) if self.analog else None

    def with_profile(self, profile, seed: int) -> "ChipConfig":
        """This configuration reading through ``profile`` as chip ``seed`` (also the device's
        seed: fault maps, pulse outcomes); a profile yield below 1 gives the stuck cells, else the
        device keeps its own. An ideal profile with every cell working is the digital chip: the
        configuration is returned unchanged."""
        if profile.ideal:
            return self
        items = profile.values()
        device = dataclasses.replace(self.device, seed=seed,
                                     yield_=profile.yield_ if profile.yield_ < 1 else self.device.yield_)
        return dataclasses.replace(self, analog=items, analog_seed=seed, device=device)

    def for_network(self, net) -> "ChipConfig":
        """This configuration with the precision a network needs (a :class:`SlicedNetwork`'s
        weight and activation bits; binary networks keep it as it is)."""
        if isinstance(net, SlicedNetwork):
            return dataclasses.replace(self, wbits=net.wbits, abits=net.abits, ternary=net.ternary)
        return self

    @classmethod
    def checked(cls, tile="128x128", pipeline=False, output="priority", debug=False, *,
                word=16, retries=3, pulse_cycles=5, device=None, update_bits=1, step_bits=2) -> "ChipConfig":
        """Validate user parameters, turning generator errors into one-line user errors."""
        try:
            tile = check_tile(tile)
        except (TypeError, ValueError) as e:
            raise RrambnnError(str(e)) from None
        try:
            check_output_stage(output)
        except ValueError as e:
            raise RrambnnError(str(e)) from None
        cfg = cls(tile, bool(pipeline), output, bool(debug), word, retries, pulse_cycles,
                  device or DeviceParams(), update_bits, step_bits)
        try:  # the controllers' own checks
            Programmer.check_parameters(word=word, retries=retries, pulse_cycles=pulse_cycles, planes=update_bits)
            if update_bits > 1:
                WeightUpdater.check_parameters(wbits=update_bits, step_bits=step_bits)
        except (TypeError, ValueError) as e:
            raise RrambnnError(str(e)) from None
        return cfg

    def to_dict(self) -> dict:
        """The configuration as plain JSON values: what a testbench receives (see :meth:`from_dict`)."""
        d = dataclasses.asdict(self)
        d["tile"] = list(self.tile)
        d["analog"] = [list(kv) for kv in self.analog]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ChipConfig":
        return cls(**{**d, "tile": tuple(d["tile"]), "device": DeviceParams(**d["device"]),
                      "analog": tuple(tuple(kv) for kv in d.get("analog", ()))})

    def tag(self) -> str:
        d = self.device
        dev = "" if d.ideal else f"-y{d.yield_}-p{d.p_fail}-e{d.endurance}-s{d.seed}"
        bits = f"-b{self.update_bits}e{self.step_bits}{'r' if self.restore else ''}" if self.update_bits > 1 else ""
        if self.wbits > 1 or self.abits > 1:
            bits += f"-{'t' if self.ternary else 'w'}{self.wbits}a{self.abits}"
        analog = f"-analog-{dict(self.analog)['name']}-s{self.analog_seed}" if self.analog else ""
        return (f"t{self.tile[0]}x{self.tile[1]}-{'pipe' if self.pipeline else 'comb'}-{self.output}"
                f"{'-dbg' if self.debug else ''}-w{self.word}r{self.retries}p{self.pulse_cycles}{bits}{dev}"
                f"{'-self' if self.self_training else ''}{analog}")


def training_design(arch, ncfg, codes, *, tile=None, output="argmax", debug=False, word=16, pulse_cycles=5,
                    step_bits=None, self_training=False):
    """The training chip of an n-bit online network (:mod:`rrambnn.gen.online_nbit`; ``ncfg`` its
    :class:`NbitConfig`, ``codes`` its offset codes): the network its arrays compute and the
    chip's configuration (weight-update controller in the offset code, restore as the rule says,
    rank-1 steps as wide as the rule's largest unless ``step_bits``). ``self_training``: the
    self-training chip (:mod:`rrambnn.hw.trainer`; debug results, which its trainer reads)."""
    from rrambnn.gen import online_nbit
    net = online_nbit.training_network(arch, ncfg, codes)
    cfg = ChipConfig.checked(ncfg.tile if tile is None else tile, False, output, debug, word=word,
                             retries=ncfg.retries, pulse_cycles=pulse_cycles, device=ncfg.device,
                             update_bits=ncfg.wbits, step_bits=ncfg.step_bits if step_bits is None else step_bits)
    cfg = dataclasses.replace(cfg, restore=ncfg.restore, debug=debug or self_training, self_training=self_training)
    return net, cfg.for_network(net)


def chip_design(weights=None, *, network=None, tile="128x128", pipeline=False, output=None, debug=False,
                update_bits=1, step_bits=None, self_training=False):
    """The chip of a weights file (default: the shipped network) and its configuration: the
    training chip of an n-bit online network (``self_training``: the self-training chip, whose
    rule fine-tunes the network: the pretrained learning rate), else the binary or multi-bit chip
    (``update_bits`` > 1: with storage planes and the weight-update controller, ``step_bits`` its
    rank-1 width). ``network``: the file's network when the command has read it already
    (:func:`rrambnn.gen.netfile.read_network`)."""
    from rrambnn.gen import online_nbit
    from rrambnn.gen.netfile import accept, is_online, read_network
    net = read_network(weights) if network is None else network
    if self_training and not is_online(net):
        raise RrambnnError("--self-training builds the chip of an n-bit online network: give --weights with one "
                           "(e.g. weights/online-400-200-10.npz)")
    if is_online(net):
        d = net
        if update_bits not in (1, d["bits"]):
            raise RrambnnError(f"{weights} holds {d['bits']}-bit weights; --update-bits {update_bits} differs")
        if pipeline:
            raise RrambnnError("the training chip feeds its layers bit-serially: --pipeline does not apply")
        ncfg = online_nbit.NbitConfig(wbits=d["bits"], abits=d["act_bits"], range_shift=d["range_shift"],
                                   lr_shift=online_nbit.default_lr_shift(d["bits"], pretrained=self_training))
        return training_design(d["arch"], ncfg, d["codes"], tile=tile, output=output or "argmax", debug=debug,
                               step_bits=step_bits, self_training=self_training)
    net = accept(net, weights, multi_bit=True)
    cfg = ChipConfig.checked(tile, pipeline, output or net.output_mode, debug, update_bits=update_bits,
                             step_bits=2 if step_bits is None else step_bits)
    return net, cfg.for_network(net)


MAX_TILES = 4096  # crossbar arrays of one chip (the reference chip has 6)


def check_size(arch, cfg: ChipConfig) -> int:
    """The number of crossbar arrays of the chip, refused above :data:`MAX_TILES` before any of
    it is built (elaborating tens of thousands of arrays takes gigabytes and hours)."""
    rows, cols = cfg.tile
    planes = max(cfg.update_bits, cfg.wbits)
    n = planes * sum(-(-a // rows) * -(-b // cols) for a, b in zip(arch[:-1], arch[1:]))
    if n > MAX_TILES:
        raise RrambnnError(f"a {'-'.join(map(str, arch))} chip needs {n:,} crossbar tiles of {rows}x{cols}; the "
                           f"generator builds at most {MAX_TILES:,} (choose larger tiles or a smaller network)")
    return n
