"""CQN networks: multi-view CNN encoder, random-shift augmentation, state encoder and the
coarse-to-fine distributional dueling critic (Seo et al. 2024, Sec. 3 and App. A).

Shape letters: B batch, V view, C channels (3·S), H, W image, L level, D action dimension.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Literal

import torch
from torch import nn

from robolearn.errors import ConfigError
from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn.discretize import zoom_in
from robolearn.learn.cqn.kernels import channel_layer_norm_silu, pixels_to_float, shift_views

log = logging.getLogger(__name__)


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights and zero biases for Linear and Conv layers (the reference init)."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.orthogonal_(module.weight, nn.init.calculate_gain("relu"))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class RandomShift(nn.Module):
    """Random-shift augmentation (DrQ): replicate-pad by `pad` px and crop back to H×W.

    Every (sample, view) gets its own integer shift. Replicate padding followed by an integer
    crop equals reading the unpadded image at clamped coordinates, so the crop is a gather on
    the uint8 tensor: no padded copy, no float grid_sample, no Python loop over the batch. The
    result is laid out [V, B, H, W, C] so that each view is already a contiguous channels-last
    image for the encoder.

    Two gathers, picked by channel count (whichever measured faster on the CPU): with few
    channels (one RGB frame) the shift is done separably, rows then columns as whole rows of
    bytes, which moves few bytes per index; with a frame stack the one element-wise gather
    over all four indices wins, because moving many channels innermost dominates either way.
    On the CPU both give way to one pass of `kernels.shift_views` where it is built.
    """

    SEPARABLE_MAX_CHANNELS = 4

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, rgb: torch.Tensor, augment: bool = True) -> torch.Tensor:
        """Args: rgb [B, V, C, H, W] (any dtype). Returns [V, B, H, W, C], same dtype."""
        batch, views, channels, height, width = rgb.shape
        dev = rgb.device
        if not augment or self.pad == 0:
            return rgb.permute(1, 0, 3, 4, 2).contiguous()  # [V, B, H, W, C]
        shift = torch.randint(0, 2 * self.pad + 1, (2, views, batch), device=dev) - self.pad
        shifted = shift_views(rgb, shift)  # the CPU kernel, where it applies
        if shifted is not None:
            return shifted
        if channels <= self.SEPARABLE_MAX_CHANNELS:
            return self._separable(rgb, shift)
        rows = (torch.arange(height, device=dev) + shift[0, ..., None]).clamp_(
            0, height - 1)  # [V, B, H]
        cols = (torch.arange(width, device=dev) + shift[1, ..., None]).clamp_(
            0, width - 1)  # [V, B, W]
        b_idx = torch.arange(batch, device=dev).view(1, batch, 1, 1)
        v_idx = torch.arange(views, device=dev).view(views, 1, 1, 1)
        # Advanced indices separated by a slice: their broadcast shape [V, B, H, W] comes first.
        return rgb[b_idx, v_idx, :, rows[..., :, None], cols[..., None, :]]  # [V, B, H, W, C]

    @staticmethod
    def _separable(rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Rows gathered as whole W-byte rows, then (on the transposed planes) columns as
        whole H-byte rows; shift [2, V, B]."""
        batch, views, channels, height, width = rgb.shape
        dev = rgb.device
        # Row r of plane p of a [B·V·C·N, M] matrix: p·N + r (one shift per sample and view).
        planes = torch.arange(batch * views * channels, device=dev).view(batch, views, -1, 1)
        rows = (torch.arange(height, device=dev) + shift[0].t()[..., None, None]).clamp_(
            0, height - 1)  # [B, V, 1, H]
        cols = (torch.arange(width, device=dev) + shift[1].t()[..., None, None]).clamp_(
            0, width - 1)  # [B, V, 1, W]
        shifted_rows = rgb.reshape(-1, width).index_select(
            0, (planes * height + rows).flatten())  # [B·V·C·H, W]
        transposed = shifted_rows.view(-1, height, width).transpose(1, 2).contiguous()
        shifted = transposed.view(-1, height).index_select(
            0, (planes * width + cols).flatten())  # [B·V·C·W, H]
        return (shifted.view(batch, views, channels, width, height)
                .permute(1, 0, 4, 3, 2).contiguous())  # [V, B, H, W, C]


class ChannelLayerNormSiLU(nn.Module):
    """LayerNorm over channels at every pixel, then SiLU; channels-last in and out.

    One fused kernel on the CPU (`kernels.channel_layer_norm_silu`). The parameters live in
    `self.norm`, an nn.LayerNorm, so checkpoints keep the keys they had when the two were
    separate modules.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_layer_norm_silu(x, self.norm.weight, self.norm.bias, self.norm.eps)


def _view_cnn(in_channels: int) -> nn.Sequential:
    # Keys "0", "1", "3", "4", ...: the layout conv, norm, SiLU had before norm and SiLU were
    # fused, so that saved encoders still load.
    layers: dict[str, nn.Module] = {}
    for i, out_channels in enumerate((32, 64, 128, 256)):
        layers[str(3 * i)] = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)
        layers[str(3 * i + 1)] = ChannelLayerNormSiLU(out_channels)
        in_channels = out_channels
    return nn.Sequential(OrderedDict(layers))


class MultiViewEncoder(nn.Module):
    """One CNN per camera; four 4×4 stride-2 convs (32/64/128/256) with channel LayerNorm
    and SiLU; features flattened and concatenated across views.

    `repr_dim` comes from a dummy forward pass at construction, so any image size works.
    """

    def __init__(self, obs_spec: ObsSpec) -> None:
        super().__init__()
        if not obs_spec.pixels:
            raise ValueError(
                "MultiViewEncoder: obs_spec.cameras is empty; use StateEncoder for "
                "state-only observations"
            )
        views, channels, height, width = obs_spec.rgb_shape
        self.convs = nn.ModuleList(_view_cnn(channels) for _ in range(views))
        self.apply(orthogonal_init)
        self.to(memory_format=torch.channels_last)
        with torch.no_grad():
            dummy = torch.zeros(views, 1, height, width, channels, dtype=torch.uint8)
            self.repr_dim = int(self(dummy).shape[-1])

    def forward(self, views_bhwc: torch.Tensor) -> torch.Tensor:
        """Args: views_bhwc [V, B, H, W, C] uint8 (RandomShift's layout).

        Returns: [B, repr_dim] float features.
        """
        views = pixels_to_float(views_bhwc)  # obs/255 − 0.5, [V, B, H, W, C]
        features = []
        for v, conv in enumerate(self.convs):
            x = views[v].permute(0, 3, 1, 2)  # [B, C, H, W] with channels-last strides
            features.append(conv(x).flatten(1))  # [B, 256·h·w]
        return torch.cat(features, dim=-1)  # [B, repr_dim]


class StateEncoder(nn.Module):
    """Low-dimensional observation path: identity (hidden_dim 0) or Linear+LayerNorm+SiLU."""

    def __init__(self, obs_spec: ObsSpec, hidden_dim: int = 0) -> None:
        super().__init__()
        in_dim = obs_spec.low_dim_shape[0]
        if hidden_dim > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.SiLU()
            )
            self.out_dim = hidden_dim
        else:
            self.net = nn.Identity()
            self.out_dim = in_dim
        self.apply(orthogonal_init)

    def forward(self, low_dim_obs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(low_dim_obs)  # [B, out_dim]
        return out


def _bottleneck(in_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, feature_dim, bias=False), nn.LayerNorm(feature_dim), nn.Tanh()
    )


CriticStreams = Literal["separate", "shared"]
"""The critic's layout: the reference's two dueling streams, or one trunk for both heads."""

_LAYOUTS: dict[str, str] = {
    "separate": "a value and an advantage stream, each with its own bottlenecks and MLP",
    "shared": "one bottleneck and MLP trunk feeding both heads",
}


class CriticStream(nn.Module):
    """The body of one dueling stream: observation bottlenecks (Linear without bias,
    LayerNorm, Tanh), then a two-layer LayerNorm+SiLU MLP run per (level, sequence step);
    for CQN-AS a GRU across the K sequence steps follows the MLP.
    """

    def __init__(
        self,
        repr_dim: int,
        low_dim: int,
        action_in_dim: int,
        feature_dim: int,
        hidden_dim: int,
        action_sequence: int,
        gru_layers: int,
    ) -> None:
        super().__init__()
        self.rgb_bottleneck = _bottleneck(repr_dim, feature_dim) if repr_dim > 0 else None
        self.low_dim_bottleneck = _bottleneck(low_dim, feature_dim) if low_dim > 0 else None
        self.obs_dim = feature_dim * ((repr_dim > 0) + (low_dim > 0))
        self.trunk = nn.Sequential(
            nn.Linear(self.obs_dim + action_in_dim, hidden_dim, bias=False),
            nn.LayerNorm(hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim, bias=False),
            nn.LayerNorm(hidden_dim),
            nn.SiLU(),
        )
        self.gru = (
            nn.GRU(hidden_dim, hidden_dim, num_layers=gru_layers, batch_first=True)
            if action_sequence > 1 else None
        )

    def observe(
        self, rgb_features: torch.Tensor | None, low_dim_features: torch.Tensor | None
    ) -> torch.Tensor:
        """[B, obs_dim]: this stream's bottlenecked observation."""
        parts = []
        if self.rgb_bottleneck is not None:
            parts.append(self.rgb_bottleneck(rgb_features))
        if self.low_dim_bottleneck is not None:
            parts.append(self.low_dim_bottleneck(low_dim_features))
        return torch.cat(parts, dim=-1)

    def forward(self, obs_feat: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:
        """Args: obs_feat [B, obs_dim]; action_in [B, L', K, a] (centres, step and level
        one-hots). Returns: [B·L', K, hidden]."""
        batch, n_levels, seq, _ = action_in.shape
        x = torch.cat([
            obs_feat[:, None, None, :].expand(batch, n_levels, seq, obs_feat.shape[-1]),
            action_in,
        ], dim=-1)  # [B, L', K, obs_dim + a]
        h: torch.Tensor = self.trunk(x.view(batch * n_levels * seq, -1))  # [B·L'·K, hidden]
        h = h.view(batch * n_levels, seq, -1)  # [B·L', K, hidden]
        if self.gru is not None:
            h = self.gru(h)[0]  # across the K steps, per (sample, level)
        return h


class C2FCritic(nn.Module):
    """Coarse-to-fine distributional (C51) dueling critic shared by all levels.

    Input per level l: the observation features, the centre of the interval level l splits
    (zeros at level 0) and a one-hot l. With `streams="separate"` (the reference) a value
    stream and an advantage stream each bottleneck the observation and run their own
    LayerNorm+SiLU MLP on that input; the value head gives [D, 1, atoms] and the advantage
    head [D, bins, atoms], combined on logits as V + A − mean_bins(A). `streams="shared"`
    (robolearn's earlier layout) runs one bottleneck and MLP trunk and feeds both heads from
    it. Heads start at zero, so the untrained critic is flat.

    CQN-AS (action_sequence K > 1, Seo et al. 2024b): each stream's MLP runs once per
    sequence step k with that step's centres [D] and a one-hot k added to its input, then
    the stream's own GRU runs across k, and the heads apply per step. The K·D (step,
    dimension) pairs are then treated like CQN's action dimensions: every method here takes
    and returns them flattened as K·D.

    Weights load only into the layout that wrote them; the other layout is refused with a
    ConfigError naming learner.cqn.critic_streams.
    """

    # Buffers registered in __init__ (nn.Module's attribute lookup types them loosely).
    support: torch.Tensor  # [atoms]
    level_onehot: torch.Tensor  # [L, L]
    step_onehot: torch.Tensor  # [K, K'] (K' = 0 for CQN)

    def __init__(
        self,
        repr_dim: int,
        low_dim: int,
        action_dim: int,
        feature_dim: int,
        hidden_dim: int,
        levels: int,
        bins: int,
        atoms: int,
        v_min: float,
        v_max: float,
        action_sequence: int = 1,
        gru_layers: int = 1,
        streams: CriticStreams = "separate",
    ) -> None:
        super().__init__()
        if repr_dim <= 0 and low_dim <= 0:
            raise ValueError("C2FCritic: needs pixel features, low-dim features or both")
        if streams not in _LAYOUTS:
            raise ValueError(f"C2FCritic: streams must be one of {sorted(_LAYOUTS)}, "
                             f"got {streams!r}")
        self.action_dim, self.levels, self.bins, self.atoms = action_dim, levels, bins, atoms
        self.action_sequence = action_sequence
        self.streams = streams
        self.flat_dim = action_sequence * action_dim  # K·D discretised "dimensions"
        step_dim = action_sequence if action_sequence > 1 else 0  # one-hot k only for CQN-AS

        def stream() -> CriticStream:
            return CriticStream(repr_dim, low_dim, action_dim + step_dim + levels,
                                feature_dim, hidden_dim, action_sequence, gru_layers)

        if streams == "separate":
            self.value_stream, self.advantage_stream = stream(), stream()
        else:
            self.stream = stream()
        self.value_head = nn.Linear(hidden_dim, action_dim * atoms)
        self.advantage_head = nn.Linear(hidden_dim, action_dim * bins * atoms)
        self.apply(orthogonal_init)
        for head in (self.value_head, self.advantage_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer("support", torch.linspace(v_min, v_max, atoms))
        self.register_buffer("level_onehot", torch.eye(levels))
        self.register_buffer("step_onehot", torch.eye(action_sequence)[:, :step_dim])
        # torch leaves register_load_state_dict_pre_hook unannotated.
        self.register_load_state_dict_pre_hook(_check_layout)  # type: ignore[no-untyped-call]

    def _bodies(self) -> tuple[CriticStream, ...]:
        if self.streams == "separate":
            return self.value_stream, self.advantage_stream
        return (self.stream,)

    def obs_features(
        self, rgb_features: torch.Tensor | None, low_dim_features: torch.Tensor | None
    ) -> torch.Tensor:
        """[B, S·obs_dim]: each stream's bottlenecked observation side by side (S = 2
        streams separate, 1 shared), computed once and reused per level."""
        return torch.cat([s.observe(rgb_features, low_dim_features) for s in self._bodies()],
                         dim=-1)

    def forward(
        self, obs_feat: torch.Tensor, centres: torch.Tensor, level_ids: torch.Tensor
    ) -> torch.Tensor:
        """Q logits at the given levels, all in one batched pass.

        Args:
            obs_feat: [B, S·obs_dim] from `obs_features`.
            centres: [B, L', K·D] interval centres, one row per evaluated level.
            level_ids: [L'] long, which levels the rows of `centres` are.

        Returns:
            q_logits [B, L', K·D, bins, atoms].
        """
        batch, n_levels, _ = centres.shape
        seq, dims, atoms = self.action_sequence, self.action_dim, self.atoms
        shape = (batch, n_levels, seq)
        action_in = torch.cat([
            centres.view(*shape, dims),
            self.step_onehot.expand(*shape, self.step_onehot.shape[-1]),
            self.level_onehot[level_ids][None, :, None, :].expand(*shape, self.levels),
        ], dim=-1)  # [B, L', K, D + K' + L]
        if self.streams == "separate":
            value_obs, adv_obs = obs_feat.chunk(2, dim=-1)  # [B, obs_dim] each
            value_h = self.value_stream(value_obs, action_in)  # [B·L', K, hidden]
            adv_h = self.advantage_stream(adv_obs, action_in)  # [B·L', K, hidden]
        else:
            value_h = adv_h = self.stream(obs_feat, action_in)  # [B·L', K, hidden]
        # fp32 from here on: under bf16 autocast the heads' outputs are bf16, and the dueling
        # sum, softmax and C51 losses need the precision.
        value: torch.Tensor = self.value_head(value_h).float().view(  # [B, L', K·D, 1, atoms]
            batch, n_levels, seq * dims, 1, atoms)
        adv: torch.Tensor = self.advantage_head(adv_h).float().view(  # [B, L', K·D, bins, atoms]
            batch, n_levels, seq * dims, self.bins, atoms)
        return value + adv - adv.mean(dim=-2, keepdim=True)

    def q_values(self, q_logits: torch.Tensor) -> torch.Tensor:
        """Expected return per bin: [..., bins, atoms] -> [..., bins]."""
        return (q_logits.softmax(dim=-1) * self.support).sum(dim=-1)

    def greedy_bins(
        self, obs_feat: torch.Tensor, low: float = -1.0, high: float = 1.0, tie_delta: float = 1e-4
    ) -> torch.Tensor:
        """Coarse-to-fine greedy pass: one critic call per level, each zooming into the best
        bin of the previous one. Where all bins are within `tie_delta` (e.g. the untrained
        critic) a uniformly random bin is taken, so the untrained policy covers the grid.

        Returns:
            [B, L, K·D] long bin indices.
        """
        return self._greedy(obs_feat, low, high, tie_delta, None)

    def greedy_bins_with_q(
        self, obs_feat: torch.Tensor, low: float = -1.0, high: float = 1.0, tie_delta: float = 1e-4
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`greedy_bins` plus the Q-values of every bin it chose among, so that the caller
        can check them: argmax over NaN Q-values still returns a valid index, so a broken
        critic would otherwise yield a finite, confidently wrong action. Also the finest
        level's return distributions (logits), from the same pass.

        Returns:
            [B, L, K·D] long bin indices, [B, L, K·D, bins] Q-values and the finest
            level's [B, K·D, bins, atoms] logits.
        """
        qs_per_level: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        bin_idx = self._greedy(obs_feat, low, high, tie_delta, qs_per_level, logits)
        return bin_idx, torch.stack(qs_per_level, dim=1), logits[-1]

    def _greedy(
        self, obs_feat: torch.Tensor, low: float, high: float, tie_delta: float,
        keep_qs: list[torch.Tensor] | None, keep_logits: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        batch = obs_feat.shape[0]
        cur_low = torch.full((batch, self.flat_dim), low, device=obs_feat.device)
        cur_high = torch.full_like(cur_low, high)
        centres = torch.zeros_like(cur_low)  # level 0 input
        chosen = []
        for level in range(self.levels):
            level_id = self.level_onehot.new_tensor([level], dtype=torch.long)
            q_logits = self(obs_feat, centres.unsqueeze(1), level_id)[:, 0]  # [B, KD, bins, A]
            qs = self.q_values(q_logits)  # [B, K·D, bins]
            if keep_qs is not None:
                keep_qs.append(qs)
            if keep_logits is not None:
                keep_logits.append(q_logits)
            flat = (qs.amax(-1) - qs.amin(-1)) < tie_delta  # [B, K·D]
            random_bin = torch.randint_like(flat, self.bins, dtype=torch.long)
            bin_idx = torch.where(flat, random_bin, qs.argmax(-1))  # [B, K·D]
            chosen.append(bin_idx)
            cur_low, cur_high = zoom_in(cur_low, cur_high, bin_idx, self.bins)
            centres = (cur_low + cur_high) / 2
        return torch.stack(chosen, dim=1)  # [B, L, D]


_LEGACY_SHARED = frozenset({"rgb_bottleneck", "low_dim_bottleneck", "trunk", "gru"})
"""Top-level names of a shared-layout critic written before learner.cqn.critic_streams,
when its one stream's modules sat directly on the critic."""


def _check_layout(critic: C2FCritic, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """C2FCritic's load-state-dict pre-hook: refuse weights of the other layout by name, not
    as a bare key mismatch, and read a shared-layout state dict from before the option."""
    names = {k[len(prefix):].split(".", 1)[0] for k in state_dict if k.startswith(prefix)}
    legacy = names & _LEGACY_SHARED
    found = ("separate" if "value_stream" in names else
             "shared" if "stream" in names or legacy else None)
    if found is not None and found != critic.streams:
        raise ConfigError(
            f"C2FCritic: the weights are of the {found!r} critic layout ({_LAYOUTS[found]}), "
            f"this critic is {critic.streams!r} ({_LAYOUTS[critic.streams]}); set "
            f"learner.cqn.critic_streams: {found} to load them (it must match the run that "
            "wrote them), or train anew")
    for key in [k for k in state_dict if k.startswith(prefix)
                and k[len(prefix):].split(".", 1)[0] in legacy]:
        state_dict[f"{prefix}stream.{key[len(prefix):]}"] = state_dict.pop(key)


def gather_bins(q_logits: torch.Tensor, bin_idx: torch.Tensor) -> torch.Tensor:
    """Pick each (level, dimension)'s bin: [B, L, D, bins, A] at [B, L, D] -> [B, L, D, A]."""
    idx = bin_idx[..., None, None].expand(*bin_idx.shape, 1, q_logits.shape[-1])
    return q_logits.gather(-2, idx).squeeze(-2)


__all__ = [
    "C2FCritic",
    "ChannelLayerNormSiLU",
    "CriticStream",
    "CriticStreams",
    "MultiViewEncoder",
    "RandomShift",
    "StateEncoder",
    "gather_bins",
    "orthogonal_init",
]
