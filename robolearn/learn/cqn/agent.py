"""CQN agent: coarse-to-fine Q-network with demonstrations (Seo et al. 2024).

One gradient step (`update`) = C51 critic loss on all samples + demo losses (FOSD, margin) on
demo samples, AdamW on encoder and critic, then a Polyak step of the target critic. Metrics
are returned as detached tensors; nothing in `update` syncs with the host.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from robolearn.config.cqn import CQNConfig
from robolearn.errors import PolicyFault
from robolearn.learn.batch import Batch, ObsSpec
from robolearn.learn.cqn.discretize import (
    decode_action,
    encode_action,
    level_centres,
    snap_to_grid,
)
from robolearn.learn.cqn.losses import c51_loss, fosd_loss, margin_loss, project_c51_target
from robolearn.learn.cqn.networks import (
    C2FCritic,
    MultiViewEncoder,
    RandomShift,
    StateEncoder,
    gather_bins,
)
from robolearn.learn.cqn.pretrained import (
    PretrainedFeatures,
    SpatialEmbeddingPooling,
    SpatialSoftmaxPooling,
)

log = logging.getLogger(__name__)


class CQNAgent:
    """Coarse-to-fine Q-network agent.

    Args:
        cfg: hyperparameters.
        obs_spec: observation layout (cameras empty: state-only agent).
        action_dim: D, actions are in [-1, 1]^D.
        device: where networks and updates run.
        compile: wrap the pixel encoder (the bulk of the update's time) in torch.compile
            (slow to compile on CPU, where the update is conv-bound; off by default).
    """

    def __init__(
        self,
        cfg: CQNConfig,
        obs_spec: ObsSpec,
        action_dim: int,
        device: torch.device | str = "cpu",
        compile: bool = False,
    ) -> None:
        if cfg.frame_stack != obs_spec.frame_stack:
            log.warning("CQNAgent: cfg.frame_stack %d differs from obs_spec.frame_stack %d; "
                        "the networks follow obs_spec", cfg.frame_stack, obs_spec.frame_stack)
        self.cfg, self.obs_spec, self.action_dim = cfg, obs_spec, action_dim
        self.device = torch.device(device)
        self.levels, self.bins, self.atoms = cfg.levels, cfg.bins, cfg.atoms

        self.frame_encoder, self.encoder, self.aug = self._pixel_path(cfg, obs_spec)
        self.state_encoder = StateEncoder(obs_spec)
        self.critic = C2FCritic(
            repr_dim=self.encoder.repr_dim if self.encoder is not None else 0,
            low_dim=self.state_encoder.out_dim,
            action_dim=action_dim,
            feature_dim=cfg.feature_dim,
            hidden_dim=cfg.hidden_dim,
            levels=cfg.levels,
            bins=cfg.bins,
            atoms=cfg.atoms,
            v_min=cfg.v_min,
            v_max=cfg.v_max,
            action_sequence=cfg.action_sequence,
            gru_layers=cfg.gru_layers,
            streams=cfg.critic_streams,
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.networks = nn.ModuleDict(
            {"state_encoder": self.state_encoder, "critic": self.critic,
             "critic_target": self.critic_target}
            | ({self._encoder_key: self.encoder} if self.encoder is not None else {})
        ).to(self.device)
        if self.encoder is not None:
            self.encoder.to(memory_format=torch.channels_last)
        params = [p for name, m in self.networks.items() if name != "critic_target"
                  for p in m.parameters()]
        # Fused: one kernel for the whole step instead of a dozen foreach passes over every
        # parameter (the optimiser step was a large share of the CPU update; CUDA has it too).
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           fused=True)
        self._target_params: list[torch.Tensor] = list(self.critic_target.parameters())
        self._online_params: list[torch.Tensor] = list(self.critic.parameters())
        self.num_updates = 0
        # Greedy Q-value of the last `act` that ran the critic (None: none did, or it failed).
        self.last_q: float | None = None
        # Std of the return distribution of the last `act`'s greedy action (see `act`); None
        # when that act did not run the critic (exploration, fault): never a past step's.
        self.last_uncertainty: float | None = None
        # CQN-AS execution: the last K predicted sequences [K, D], newest last.
        self._predictions: deque[npt.NDArray[np.float32]] = deque(maxlen=cfg.action_sequence)

        self._encode_rgb: Callable[[torch.Tensor], torch.Tensor] | None = self.encoder
        if compile and self.encoder is not None:
            self._encode_rgb = torch.compile(self.encoder)

    # ------------------------------------------------------------------ features
    def _pixel_path(
        self, cfg: CQNConfig, obs_spec: ObsSpec
    ) -> tuple[
        PretrainedFeatures | None,
        MultiViewEncoder | SpatialEmbeddingPooling | SpatialSoftmaxPooling | None,
        RandomShift,
    ]:
        """(frozen frame encoder, trainable pixel encoder, augmentation) for cfg.encoder.

        'scratch': no frame encoder; the reference CNN on random-shifted images.
        'pretrained': the frozen model that the replay buffers and the actor's frame stack
        run once per frame (`frame_encoder`), and a pooling (cfg.pooling) trained on its
        feature maps, shifted by up to cfg.feature_shift_pad cells.
        """
        if not obs_spec.pixels:
            return None, None, RandomShift(0)
        if cfg.encoder == "scratch":
            return None, MultiViewEncoder(obs_spec), RandomShift(cfg.random_shift_pad)
        frozen = PretrainedFeatures(
            obs_spec.image_hw, stride=cfg.pretrained_stride,
            input_size=cfg.pretrained_input_size, dtype=cfg.feature_dtype, device=self.device)
        pooling: SpatialEmbeddingPooling | SpatialSoftmaxPooling = (
            SpatialSoftmaxPooling(obs_spec, frozen, cfg.pooling_channels)
            if cfg.pooling == "keypoints"
            else SpatialEmbeddingPooling(obs_spec, frozen, cfg.pooling_channels,
                                         cfg.spatial_embeddings))
        return frozen, pooling, RandomShift(cfg.feature_shift_pad)

    @property
    def _encoder_key(self) -> str:
        """The pixel encoder's name in checkpoints and weights messages: a scratch CNN and
        the two poolings of pretrained features never load into each other."""
        if self.frame_encoder is None:
            return "encoder"
        return "keypoints" if isinstance(self.encoder, SpatialSoftmaxPooling) else "pooling"

    def _autocast(self) -> torch.autocast:
        """The networks' forward passes: bf16 matmuls/convolutions when cfg.precision says
        so (parameters, gradients and optimiser state stay fp32), a no-op for fp32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg.precision == "bf16")

    def _encode(
        self, rgb_views: torch.Tensor | None, low_dim_obs: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Encoder outputs (pixel features [B, repr_dim] or None, low-dim features [B, P'])
        from [V, B, H, W, C] uint8 views and [B, S·P] states; each critic bottlenecks them."""
        # _views gives None exactly when there is no pixel encoder.
        rgb_features = (self._encode_rgb(rgb_views)
                        if rgb_views is not None and self._encode_rgb is not None else None)
        low_dim_features: torch.Tensor = self.state_encoder(low_dim_obs)
        return rgb_features, low_dim_features

    def _views(self, rgb_obs: torch.Tensor | None, augment: bool) -> torch.Tensor | None:
        if self.encoder is None:
            return None
        if rgb_obs is None:
            what = (f"[.., {', '.join(map(str, self.obs_spec.rgb_shape))}] uint8 images"
                    if self.frame_encoder is None else "the frame encoder's stacked features")
            raise ValueError(
                f"CQNAgent: pixel agent (cameras {self.obs_spec.cameras}) got rgb_obs=None; "
                f"pass {what}"
            )
        views: torch.Tensor = self.aug(rgb_obs, augment=augment)  # [V, B, H, W, C]
        return views

    # ------------------------------------------------------------------ acting
    def reset(self) -> None:
        """Start of an episode: forget CQN-AS predictions (no-op state for plain CQN)."""
        self._predictions.clear()

    @torch.no_grad()
    def act(
        self,
        rgb_obs: npt.NDArray[np.uint8] | npt.NDArray[np.float16] | None,
        low_dim_obs: npt.NDArray[np.float32],
        step: int,
        eval_mode: bool,
    ) -> npt.NDArray[np.float32]:
        """One action for one observation.

        Plain CQN: the greedy coarse-to-fine action, plus clipped Gaussian noise (cfg.stddev)
        re-snapped to the grid when not eval_mode. CQN-AS (K > 1): the same for a whole
        K-step sequence, then temporal ensembling (ACT): the action for now is the average of
        what each of the last K predictions said for now, weighted exp(−decay·age) so the
        newest prediction counts most. Call `reset()` at every episode start.

        Args:
            rgb_obs: [V, 3·S, H, W] uint8; for cfg.encoder 'pretrained' the stacked
                features [V, S·C, h, w] of `frame_encoder` (as `FrameStacker` makes them);
                None for a state-only agent.
            low_dim_obs: [S·P] float32.
            step: environment step (uniform random actions while < num_expl_steps).
            eval_mode: greedy (no noise, no random exploration phase).

        Sets `last_q` and `last_uncertainty` (the std of the finest level's return
        distribution at the greedy bins, averaged over dimensions; from the logits of the
        pass that chose the action, no extra forward pass).

        Returns:
            [D] float32 in [-1, 1]; on the coarse-to-fine grid for plain CQN (an ensemble
            average of grid actions for CQN-AS).

        Raises:
            PolicyFault: the critic's Q-values are not all finite (nothing is queued for
                CQN-AS ensembling then).
        """
        levels, bins, seq = self.levels, self.bins, self.cfg.action_sequence
        if not eval_mode and step < self.cfg.num_expl_steps:
            self.last_uncertainty = None
            action = torch.empty(self.action_dim, device=self.device).uniform_(-1.0, 1.0)
            explore: npt.NDArray[np.float32] = (
                snap_to_grid(action, levels, bins).cpu().numpy().astype(np.float32))
            return explore
        rgb = None
        if rgb_obs is not None:
            rgb = torch.as_tensor(rgb_obs, device=self.device).unsqueeze(0)  # [1, V, C, H, W]
        low_dim = torch.as_tensor(low_dim_obs, dtype=torch.float32, device=self.device)
        with self._autocast():
            encoded = self._encode(self._views(rgb, augment=False), low_dim.unsqueeze(0))
            # The reference acts with the target critic (on the online encoder): the
            # Polyak average moves smoothly where the online critic jumps update to update.
            # [1, L, K·D], [1, L, K·D, bins], and the finest level's [1, K·D, bins, atoms]
            bin_idx, qs, finest = self.critic_target.greedy_bins_with_q(
                self.critic_target.obs_features(*encoded))
        # The Q-values themselves, not the action: argmax over NaN picks a valid bin, and
        # a decoded grid action is always finite (a critic of NaN weights drove the arm to a
        # corner of the box).
        if not bool(torch.isfinite(qs).all()):
            bad = int((~torch.isfinite(qs)).sum())
            self.last_q = self.last_uncertainty = None
            raise PolicyFault("non_finite_q", f"CQN critic gave {bad} of {qs.numel()} "
                              "Q-values NaN or inf; holding instead of acting")
        # The greedy Q of the finest level, averaged over action dimensions (telemetry).
        self.last_q = float(qs[:, -1].gather(-1, bin_idx[:, -1, :, None]).mean())
        self.last_uncertainty = self._return_std(finest, bin_idx[:, -1])
        actions = decode_action(bin_idx, levels, bins)[0].view(seq, self.action_dim)  # [K, D]
        if not eval_mode and self.cfg.stddev > 0:
            noisy = actions + self.cfg.stddev * torch.randn_like(actions)
            actions = snap_to_grid(noisy.clamp(-1.0, 1.0), levels, bins)
        actions_np: npt.NDArray[np.float32] = actions.cpu().numpy().astype(np.float32)
        if seq == 1:
            now: npt.NDArray[np.float32] = actions_np[0]
            return now
        return self._temporal_ensemble(actions_np)

    def _return_std(self, q_logits: torch.Tensor, bin_idx: torch.Tensor) -> float:
        """Std of the C51 return distribution of the chosen bins, averaged over action
        dimensions: how unsure the critic is of the action's return (a spread of outcomes
        it has not learnt apart), in the units of the support (v_min..v_max). An untrained
        critic gives the uniform distribution's std, (v_max - v_min)·0.29 for many atoms.

        Args:
            q_logits: [1, K·D, bins, atoms] of the finest level.
            bin_idx: [1, K·D] the bins chosen at that level.
        """
        probs = gather_bins(q_logits.float(), bin_idx).softmax(-1)  # [1, K·D, atoms]
        support = self.critic_target.support  # [atoms]
        mean = (probs * support).sum(-1, keepdim=True)  # [1, K·D, 1]
        var = (probs * (support - mean).square()).sum(-1)  # [1, K·D]
        return float(var.sqrt().mean())

    def _temporal_ensemble(self, sequence: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Average of the predictions for the current step; `sequence` [K, D] is the newest."""
        self._predictions.append(sequence)
        newest_first = list(reversed(self._predictions))
        # The prediction made `age` steps ago planned the current step as its step `age`.
        preds = np.stack([p[age] for age, p in enumerate(newest_first)])  # [n, D]
        weights = np.exp(-self.cfg.temporal_ensemble_decay * np.arange(len(preds)))  # [n]
        action = (weights[:, None] * preds).sum(0) / weights.sum()
        clipped: npt.NDArray[np.float32] = np.clip(action, -1.0, 1.0).astype(np.float32)
        return clipped

    # ------------------------------------------------------------------ learning
    def update_critic(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step of encoder + critic on `batch` (online and demo samples)."""
        cfg, levels, bins = self.cfg, self.levels, self.bins
        all_levels = torch.arange(levels, device=self.device)
        target = self.target_distribution(batch)  # [B, L, K·D, atoms]
        action_bins = encode_action(self._flat_action(batch), levels, bins)  # [B, L, K·D]
        with self._autocast():
            encoded = self._encode(self._views(batch.rgb_obs, True), batch.low_dim_obs)
            obs_feat = self.critic.obs_features(*encoded)  # [B, obs_dim]
            q_logits = self.critic(
                obs_feat, level_centres(action_bins, levels, bins), all_levels
            )  # [B, L, K·D, bins, atoms], fp32
        critic_loss = c51_loss(gather_bins(q_logits, action_bins), target)
        loss = cfg.critic_lambda * critic_loss
        metrics = {"critic_loss": critic_loss.detach()}
        if cfg.bc_lambda > 0:
            q_probs = q_logits.softmax(-1)  # [B, L, K·D, bins, atoms]
            qs = (q_probs * self.critic.support).sum(-1)  # [B, L, K·D, bins]
            bc_fosd = fosd_loss(q_probs, action_bins, batch.is_demo)
            bc_margin = margin_loss(qs, action_bins, batch.is_demo, cfg.bc_margin)
            loss = loss + cfg.bc_lambda * (bc_fosd + bc_margin)
            metrics |= {"bc_fosd_loss": bc_fosd.detach(), "bc_margin_loss": bc_margin.detach()}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward bare
        self.optimizer.step()
        metrics |= {"loss": loss.detach(), "demo_ratio": batch.is_demo.float().mean()}
        return metrics

    def _flat_action(self, batch: Batch) -> torch.Tensor:
        """[B, D] (CQN) or [B, K, D] (CQN-AS) -> [B, K·D]."""
        seq, dims = self.cfg.action_sequence, self.action_dim
        expected = (batch.size, dims) if seq == 1 else (batch.size, seq, dims)
        if tuple(batch.action.shape) != expected:
            raise ValueError(
                f"CQNAgent.update: batch.action has shape {tuple(batch.action.shape)}, "
                f"expected {expected} (action_sequence={seq}, action_dim={dims}); check the "
                "replay sampler's sequence length"
            )
        return batch.action.reshape(batch.size, seq * dims)

    @torch.no_grad()
    def target_distribution(self, batch: Batch) -> torch.Tensor:
        """Projected C51 target [B, L, K·D, atoms] for the batch's transitions.

        The next observation goes through the online encoder (no target encoder) without
        grad. Double-Q: the online critic's greedy coarse-to-fine pass picks the next bins at
        every level; the target critic's distribution at those bins is backed up. The batch's
        `discount` is used as given: 0 for a terminal transition, whose target is then r alone.
        """
        levels, bins = self.levels, self.bins
        with self._autocast():
            next_encoded = self._encode(self._views(batch.next_rgb_obs, True),
                                        batch.next_low_dim_obs)
            next_bins = self.critic.greedy_bins(
                self.critic.obs_features(*next_encoded))  # [B, L, K·D]
            target_q_logits = self.critic_target(
                self.critic_target.obs_features(*next_encoded),
                level_centres(next_bins, levels, bins),
                torch.arange(levels, device=self.device),
            )  # [B, L, K·D, bins, atoms], fp32
        target_q_dist = gather_bins(target_q_logits, next_bins).softmax(-1)  # [B, L, K·D, atoms]
        return project_c51_target(batch.reward, batch.discount, target_q_dist,
                                  self.critic.support)

    def update_target(self) -> None:
        """Polyak step: target ← (1 − tau)·target + tau·online."""
        # no_grad is essential: the online parameters require grad, so without it every
        # lerp records autograd history into the target weights and each update's graph
        # chains onto the last (about 10 MB a update, without bound).
        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._online_params, self.cfg.tau)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One CQN update on a batch already on `self.device`; metrics as detached tensors."""
        metrics = self.update_critic(batch)
        self.update_target()
        self.num_updates += 1
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume learning: networks, target, optimiser, counters."""
        return {
            "networks": self.networks.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.num_updates = int(state["num_updates"])

    def _policy_modules(self) -> dict[str, nn.Module]:
        # "critic" is the critic that acts: the target critic, as in the reference.
        modules: dict[str, nn.Module] = {
            "state_encoder": self.state_encoder, "critic": self.critic_target
        }
        if self.encoder is not None:
            modules[self._encoder_key] = self.encoder
        return modules

    def policy_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Only what `act` needs (encoders + the target critic), as CPU tensors, so a learner can
        ship weights to an actor on another device. A frozen `frame_encoder` is not part of
        it: the receiver builds its own from the same package."""
        return {
            name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
            for name, m in self._policy_modules().items()
        }

    def load_policy_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Load weights from `policy_state_dict` (into the acting, target critic; the online
        critic is left as it is)."""
        modules = self._policy_modules()
        if set(state) != set(modules):
            raise ValueError(
                f"CQNAgent.load_policy_state_dict: expected parts {sorted(modules)}, got "
                f"{sorted(state)}; was the sender built with the same ObsSpec?"
            )
        for name, module in modules.items():
            module.load_state_dict(state[name])
