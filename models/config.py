"""What a spiking transformer is, independent of its weights: the ``model.config`` of a loaded model."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from statten_hw.errors import ConfigError, brief

#: Attention modes of the SDT/STAtten backbone (``sdt`` family) and of Spikformer.
SDT_ATTENTIONS = ("STAtten", "SDSA", "T_STAtten", "N_STAtten", "A2OS2A")
SPIKFORMER_ATTENTIONS = ("SSA",)
FAMILIES = {"statten": SDT_ATTENTIONS, "sdt": SDT_ATTENTIONS, "spikformer": SPIKFORMER_ATTENTIONS}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a spiking transformer.

    ``timesteps`` is T; ``block_size`` is the STAtten chunk size B (the number of consecutive time
    steps one attention block spans; 1 for every non-STAtten attention). ``img_size`` and
    ``in_channels`` describe one input frame; ``dvs`` selects event-frame input ``[B, T, C, H, W]``
    and the DVS attention rules; ``tet`` returns per-step logits ``[T, B, K]``.
    """

    family: str
    attention: str
    depth: int
    dim: int
    heads: int
    timesteps: int
    block_size: int
    img_size: int
    in_channels: int
    num_classes: int
    pooling_stat: str = "0011"
    mlp_ratio: int = 4
    dvs: bool = False
    tet: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown model family {brief(self.family)}; known: {sorted(FAMILIES)}")
        if self.attention not in FAMILIES[self.family]:
            raise ConfigError(
                f"attention {brief(self.attention)} is not available for family {self.family!r}; "
                f"choose one of {FAMILIES[self.family]}"
            )
        for name in ("depth", "dim", "heads", "timesteps", "block_size", "img_size", "in_channels", "num_classes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ConfigError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.dim % 8:
            raise ConfigError(f"dim {self.dim} must be divisible by 8 (the patch embedding uses dim/8 channels)")
        if self.timesteps % self.block_size:
            raise ConfigError(
                f"T = {self.timesteps} is not divisible by the block size B = {self.block_size}"
            )
        if len(self.pooling_stat) != 4 or set(self.pooling_stat) - {"0", "1"}:
            raise ConfigError(f"pooling_stat must be four 0/1 characters, got {brief(self.pooling_stat)}")

    @property
    def token_grid(self) -> int:
        """Side of the token grid after the patch embedding's max-pools (H = W)."""
        side = self.img_size
        pools = self.pooling_stat.count("1") if self.family != "spikformer" else 2
        for _ in range(pools):
            side = (side - 1) // 2 + 1  # MaxPool2d(3, stride 2, padding 1)
        return side

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``[T, C, H, W]`` for event frames, ``[C, H, W]`` for static images."""
        frame = (self.in_channels, self.img_size, self.img_size)
        return (self.timesteps, *frame) if self.dvs else frame

    def with_overrides(self, **overrides) -> "ModelConfig":
        known = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(known) - set(asdict(self))
        if unknown:
            raise ConfigError(f"unknown model option(s) {sorted(unknown)}; known: {sorted(asdict(self))}")
        return replace(self, **known)

    def to_dict(self) -> dict:
        return asdict(self)
