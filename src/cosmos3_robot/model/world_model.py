"""WorldModel: a Cosmos-3-style Mixture-of-Transformers with a Reasoner and a Generator tower.

Sequence, in order (reasoner tokens first, then generator tokens):
    text (n_text, reasoner, causal)
    context steps c = 0..C-1: frame tokens (v gh gw) + 1 state token      clean, block-causal in time
    future steps f = 0..F-1:  frame tokens (v gh gw) + 1 state token      noise level t_frames
    actions k = 0..F-1: one token each (action k leads to future frame k)  noise level t_actions
Text never sees generator tokens; context step c sees text and context steps <= c; noisy tokens
see everything. So text + context keys/values do not depend on the noisy tokens: they are computed
once (`encode_prefix`, `extend_prefix`) and reused across denoising steps and env steps.

The noise levels make one model serve every mode: forward dynamics (t_actions = 0), policy (both
noisy), inverse dynamics (t_frames = 0) and video prediction (actions pure noise, t_actions = 1).
A reasoner-only pass over (text, frame, judge query) gives the success judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import ModelConfig
from .flow import add_noise, euler_schedule, sample_time, velocity_target
from .frame_tokenizer import FrameAutoencoder
from .mot import GENERATOR, REASONER, MoTBlock
from .mrope import grid_positions, rope_angles, text_positions
from .tokens import JUDGE, ByteTokenizer, DomainAwareLinear, TimestepEmbedding
from ..errors import UserError

FRAME, STATE, ACTION = 0, 1, 2  # modality embedding rows
# training mode mix: forward dynamics, policy, inverse dynamics, video prediction
MODE_PROBS = (0.4, 0.3, 0.15, 0.15)
MOTION_THRESHOLD = 0.25  # |latent change| (standardized units) counted as motion by flow_loss's weighting
HEAD_CHANNELS = 32  # conv frame head: features per latent pixel that the generator tokens hand to the conv net


@dataclass
class PrefixCache:
    """Per-layer keys/values of text + context tokens, and how many context steps they hold."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    n_text: int
    n_context: int
    domain: torch.Tensor
    recent_latents: torch.Tensor  # (b, 2, v, c, h, w): the last two context frames (one repeated if only one)
    last_state: torch.Tensor  # (b, S): the last context state, the base of residual state generation

    @property
    def last_latents(self) -> torch.Tensor:
        """(b, 1, v, c, h, w): the last context frame, the base of residual frame generation."""
        return self.recent_latents[:, -1:]


def attention_mask(n_text: int, n_context: int, n_future: int, step_tokens: int) -> torch.Tensor:
    """(L, L) bool, True = query row may attend to key column (see module docstring)."""
    n_noisy = n_future * step_tokens + n_future
    block = torch.cat([
        torch.full((n_text,), -1),
        torch.arange(n_context).repeat_interleave(step_tokens),
        torch.full((n_noisy,), n_context),  # noisy tokens: one block after all context
    ])
    idx = torch.arange(len(block))
    is_text = block < 0
    q_text, k_text = is_text[:, None], is_text[None, :]
    text_rule = q_text & k_text & (idx[None, :] <= idx[:, None])
    gen_rule = ~q_text & (k_text | (block[None, :] <= block[:, None]))
    return text_rule | gen_rule


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig, metadata: dict | None = None):
        super().__init__()
        self.cfg = cfg
        self.metadata = dict(metadata or {})  # embodiment specs, normalizer stats: saved with the weights
        d, patch_dim = cfg.dim, cfg.latent_channels * cfg.latent_patch**2
        self.text_tokenizer = ByteTokenizer(cfg.max_text_len)
        self.frame_tokenizer = FrameAutoencoder(cfg)
        self.text_embed = nn.Embedding(cfg.vocab_size, d)
        self.frame_in = nn.Linear(patch_dim, d)  # generator: latent patches in
        self.vision_in = nn.Linear(patch_dim, d)  # reasoner: latent patches in (understanding)
        self.camera_embed = nn.Embedding(cfg.max_cameras, d)
        self.modality_embed = nn.Embedding(3, d)
        self.action_in = DomainAwareLinear(cfg.n_domains, cfg.action_dim, d)
        self.state_in = DomainAwareLinear(cfg.n_domains, cfg.state_dim, d)
        self.time_embed = TimestepEmbedding(d)
        # optional direct path action k -> tokens of future frame k (zero-initialized: a fine-tune starts
        # from the attention-only model's behaviour)
        self.action_cond = DomainAwareLinear(cfg.n_domains, cfg.action_dim, d) if cfg.action_to_frames else None
        self.frame_pos = nn.Parameter(torch.zeros(cfg.tokens_per_frame, d)) if cfg.frame_pos_embed else None
        self.blocks = nn.ModuleList(MoTBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.ModuleList([nn.RMSNorm(d, eps=cfg.norm_eps), nn.RMSNorm(d, eps=cfg.norm_eps)])
        self.frame_conv = None
        if cfg.frame_head == "conv":
            c, w = cfg.latent_channels, cfg.conv_head_width
            self.frame_out = nn.Linear(d, HEAD_CHANNELS * cfg.latent_patch**2)
            n_in = HEAD_CHANNELS + 3 * c + 2 + cfg.geometry_planes()
            layers = [nn.Conv2d(n_in, w, 3, padding=1), nn.GELU()]
            for _ in range(cfg.conv_head_layers - 2):
                layers += [nn.Conv2d(w, w, 3, padding=1), nn.GELU()]
            self.frame_conv = nn.Sequential(*layers, nn.Conv2d(w, c, 3, padding=1))
            axis = torch.linspace(-1, 1, cfg.latent_size)
            self.register_buffer("latent_coords", torch.stack(torch.meshgrid(axis, axis, indexing="xy")),
                                 persistent=False)
            centres = (torch.arange(cfg.latent_size) + 0.5) / cfg.latent_size * 2 - 1  # latent pixel centres
            self.register_buffer("latent_centres", torch.stack(torch.meshgrid(centres, centres, indexing="xy")),
                                 persistent=False)
        else:
            self.frame_out = nn.Linear(d, patch_dim)
        self.action_out = DomainAwareLinear(cfg.n_domains, d, cfg.action_dim)
        self.state_out = DomainAwareLinear(cfg.n_domains, d, cfg.state_dim)
        self.lm_head = nn.Linear(d, cfg.vocab_size, bias=False)  # reasoner text out
        self.judge_head = nn.Linear(d, 1)
        self._init_weights()

    def _init_weights(self):
        # Zero the output heads so an untrained model predicts zero velocity (DiT-style), small
        # normal init elsewhere; the frame tokenizer keeps PyTorch's conv defaults.
        for name, p in self.named_parameters():
            if name.startswith("frame_tokenizer") or p.dim() < 2 or "weight" not in name:
                continue
            if name.startswith(("action_in", "state_in", "action_out", "state_out")):
                continue  # DomainAwareLinear scales its own init
            nn.init.normal_(p, std=0.02)
        last_frame_layer = self.frame_out if self.frame_conv is None else self.frame_conv[-1]
        for head in (last_frame_layer, self.judge_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        nn.init.zeros_(self.action_out.weight)
        nn.init.zeros_(self.state_out.weight)
        if self.action_cond is not None:
            nn.init.zeros_(self.action_cond.weight)
        if self.frame_pos is not None:
            nn.init.normal_(self.frame_pos, std=0.02)

    # ------------------------------------------------------------------ tokens

    def tokenize_text(self, texts: list[str]) -> torch.Tensor:
        return self.text_tokenizer.encode(texts).to(self.text_embed.weight.device)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """(b, T, v, c, h, w) -> (b, T, v*gh*gw, c*p*p)."""
        p = self.cfg.latent_patch
        return rearrange(latents, "b t v c (gh p1) (gw p2) -> b t (v gh gw) (c p1 p2)", p1=p, p2=p)

    def unpatchify(self, tokens: torch.Tensor, n_views: int) -> torch.Tensor:
        p, g = self.cfg.latent_patch, self.cfg.grid_size
        return rearrange(tokens, "b t (v gh gw) (c p1 p2) -> b t v c (gh p1) (gw p2)", v=n_views, gh=g, gw=g,
                         p1=p, p2=p)

    def _camera_ids(self, n_views: int, device) -> torch.Tensor:
        if n_views > self.cfg.max_cameras:
            raise UserError(f"{n_views} cameras exceed max_cameras={self.cfg.max_cameras}")
        return torch.arange(n_views, device=device).repeat_interleave(self.cfg.tokens_per_frame)

    def _step_tokens(self, latents, state, domain, t=None, actions=None) -> torch.Tensor:
        """Frames (b, T, v, c, h, w) + state (b, T, S) -> (b, T*(v*gh*gw + 1), d), per step [frame..., state];
        with `cfg.action_to_frames`, the (noisy) actions (b, T, A) that lead to these steps are added."""
        b, T, v = latents.shape[:3]
        frame = self.frame_in(self.patchify(latents)) + self.camera_embed(self._camera_ids(v, latents.device))
        frame = frame + self.modality_embed.weight[FRAME]
        if self.frame_pos is not None:
            frame = frame + self.frame_pos.repeat(v, 1)
        st = self.state_in(state, domain) + self.modality_embed.weight[STATE]
        tokens = torch.cat([frame, st[:, :, None]], dim=2)  # (b, T, n+1, d)
        if t is not None:
            tokens = tokens + self.time_embed(t)[:, None, None]
        if actions is not None and self.action_cond is not None:
            tokens = tokens + self.action_cond(actions, domain)[:, :, None]
        return tokens.reshape(b, -1, tokens.shape[-1])

    def _action_tokens(self, actions, domain, t) -> torch.Tensor:
        return self.action_in(actions, domain) + self.modality_embed.weight[ACTION] + self.time_embed(t)[:, None]

    def _positions(self, n_text: int, start_step: int, n_steps: int, n_views: int, with_actions: bool = False):
        """(3, L) positions for `n_steps` steps starting at step index `start_step` (after the text),
        followed by one action token per step when `with_actions` (action k -> frame start_step+k)."""
        g = self.cfg.grid_size
        pos = []
        for s in range(start_step, start_step + n_steps):
            t = n_text + s
            pos += [grid_positions(t, g, g, col_offset=v * g) for v in range(n_views)]
            pos.append(torch.tensor([[t], [0], [0]]))
        if with_actions:
            pos.append(torch.stack([torch.arange(n_text + start_step, n_text + start_step + n_steps)]
                                   + [torch.zeros(n_steps, dtype=torch.long)] * 2))
        return torch.cat(pos, dim=1) if pos else torch.zeros(3, 0, dtype=torch.long)

    def _rope(self, positions: torch.Tensor, device):
        cos, sin = rope_angles(positions, self.cfg.head_dim, self.cfg.rope_theta, self.cfg.mrope_section)
        return cos.to(device), sin.to(device)

    def _run(self, x, n_reasoner, positions, mask, past=None):
        cos, sin = self._rope(positions, x.device)
        kvs = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, n_reasoner, cos, sin, mask, None if past is None else past[i])
            kvs.append(kv)
        return x, kvs

    def _heads(self, h_noisy, n_future, n_views, domain, x_frames, t_frames, recent, x_state=None,
               state_hint=None, hint_teacher=None, last_state=None):
        """Generator outputs of the noisy tokens -> frame, state and action velocities. With
        `cfg.frame_prediction == "x0"` the frame head predicts the clean latents ("frames_x0") and the
        velocity follows from the noisy input: v = (x_t - x0) / t. `recent` (b, 2, v, c, h, w): the last
        two context latents, read by the conv frame head. With `cfg.conv_head_state` the conv head also
        reads a future state (b, F, S): the model's own clean estimate x_state - t * v_state from the
        noisy future state `x_state`, or (training) `state_hint` for the examples where `hint_teacher`
        (b,) is True; the own estimate is then detached, so the frame loss does not bend the state head.
        With `cfg.residual_state` the estimate is a change from `last_state` (b, S), which is added back."""
        h = self.norm_out[GENERATOR](h_noisy)
        b, step = h.shape[0], n_views * self.cfg.tokens_per_frame + 1
        steps = h[:, : n_future * step].reshape(b, n_future, step, -1)
        frames = self.unpatchify(self.frame_out(steps[:, :, :-1]), n_views)
        state = self.state_out(steps[:, :, -1], domain)
        if self.frame_conv is not None:
            hint = None
            if self.cfg.conv_head_state:
                hint = x_state - t_frames.view(-1, 1, 1) * state
                if self.cfg.residual_state:
                    hint = hint + last_state[:, None]
                if state_hint is not None:
                    hint = torch.where(hint_teacher.view(-1, 1, 1), state_hint, hint.detach())
                hint = hint[..., : self.cfg.conv_head_state]
            frames = self._conv_frames(frames, x_frames, recent, hint)
        actions = self.action_out(h[:, n_future * step :], domain)
        out = {"frames": frames, "state": state, "actions": actions}
        if self.cfg.frame_prediction == "x0":
            t = t_frames.reshape(-1, *[1] * (frames.dim() - 1)).clamp_min(1e-3)
            out |= {"frames_x0": frames, "frames": (x_frames - frames) / t}
        return out

    def _conv_frames(self, feats, x_frames, recent, hint=None):
        """Conv frame head: per-pixel token features (b, F, v, HEAD_CHANNELS, h, w) + noisy input + the
        last two context latents + pixel coordinates (+ planes from the state `hint` (b, F, k): s, x*s, y*s,
        or with `cfg.state_geometry` the offsets from each point / pose and each pose's body-frame
        coordinates, at the latent pixel centres) -> (b, F, v, c, h, w)."""
        b, F_, v, _, hh, ww = feats.shape
        ctx = torch.cat([recent[:, 0], recent[:, 1]], dim=2)[:, None].expand(b, F_, v, -1, hh, ww)
        coords = self.latent_coords.expand(b, F_, v, 2, hh, ww)
        parts = [feats, x_frames, ctx, coords]
        if hint is not None:
            s = hint[:, :, None, :, None, None].expand(b, F_, v, hint.shape[-1], hh, ww)
            geometry = self.cfg.geometry_parts()
            if not geometry:
                parts += [s, s * coords[:, :, :, :1], s * coords[:, :, :, 1:]]
            X, Y = self.latent_centres[0], self.latent_centres[1]
            for kind, i in geometry:
                dx, dy = X - s[:, :, :, i], Y - s[:, :, :, i + 1]
                parts += [dx[:, :, :, None], dy[:, :, :, None]]
                if kind == "pose":  # body-frame coordinates: rotate by -angle
                    cos, sin = s[:, :, :, i + 2], s[:, :, :, i + 3]
                    parts += [(cos * dx + sin * dy)[:, :, :, None], (-sin * dx + cos * dy)[:, :, :, None]]
        x = torch.cat(parts, dim=3)
        return self.frame_conv(x.flatten(0, 2)).reshape(b, F_, v, -1, hh, ww)

    @staticmethod
    def _recent(ctx_latents: torch.Tensor) -> torch.Tensor:
        """The last two context steps (b, 2, v, c, h, w); a single context step is used twice."""
        return ctx_latents[:, -2:] if ctx_latents.shape[1] >= 2 else ctx_latents[:, -1:].repeat(1, 2, 1, 1, 1, 1)

    # ------------------------------------------------------------------ full forward (training)

    def forward(self, text_ids, ctx_latents, ctx_state, fut_latents, fut_state, actions, domain, t_frames,
                t_actions, state_hint=None, hint_teacher=None) -> dict[str, torch.Tensor]:
        """Velocity predictions for the (noisy) future frames, future state and actions.
        Shapes: text_ids (b, n_text); *_latents (b, T, v, c, h, w); *_state (b, T, S); actions (b, F, A)."""
        n_text, C, F_, v = text_ids.shape[1], ctx_latents.shape[1], fut_latents.shape[1], ctx_latents.shape[2]
        x = torch.cat([
            self.text_embed(text_ids),
            self._step_tokens(ctx_latents, ctx_state, domain),
            self._step_tokens(fut_latents, fut_state, domain, t_frames, actions),
            self._action_tokens(actions, domain, t_actions),
        ], dim=1)
        step = v * self.cfg.tokens_per_frame + 1
        positions = torch.cat([text_positions(n_text), self._positions(n_text, 0, C, v),
                               self._positions(n_text, C, F_, v, with_actions=True)], dim=1)
        mask = attention_mask(n_text, C, F_, step).to(x.device)
        h, _ = self._run(x, n_text, positions, mask)
        return self._heads(h[:, n_text + C * step :], F_, v, domain, fut_latents, t_frames, self._recent(ctx_latents),
                           fut_state, state_hint, hint_teacher, ctx_state[:, -1])

    def flow_loss(self, batch: dict, generator: torch.Generator | None = None,
                  mode_probs: tuple[float, ...] = MODE_PROBS, context_noise: float = 0.0,
                  motion_weight: float = 0.0, frame_t1_share: float = 0.0, hint_teacher: float = 0.5,
                  hint_noise: float = 0.01, state_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """One rectified-flow training loss with modes sampled per example (see module docstring).
        `batch` keys: text_ids, ctx_latents, ctx_state, fut_latents, fut_state, actions, action_mask,
        state_mask, domain.

        `context_noise` > 0 corrupts the clean context (latents and state) with Gaussian noise of a
        per-example scale drawn from U(0, context_noise), while the targets stay clean: the model
        learns to pull imperfect context back to the data, which is what its own predictions are
        in a closed loop (context-noise augmentation, as GameNGen and DIAMOND use against drift).

        `motion_weight` > 0 multiplies the frame loss by 1 + motion_weight on latents that change from
        the last context frame (|change| > MOTION_THRESHOLD): the moving pusher and block are a few
        percent of the latents, and an unweighted loss is met by copying the last frame.

        `frame_t1_share` > 0 sets the frame noise level to t = 1 (pure noise) for that fraction of the
        examples: nothing of the target survives in the input, so the frames must come from the context
        and the action. At intermediate t the model can read most of a small frame change off the noisy
        input itself, and with the logit-normal time distribution it learns that shortcut instead of the
        dynamics (measured: one-step predictions from t = 1 uncorrelated with the true change).

        With `cfg.conv_head_state`, a `hint_teacher` fraction of the examples hand the conv frame head the
        true future state plus Gaussian noise of std `hint_noise` (teacher forcing: it learns to draw the
        frame from the state), the rest the model's own state estimate (what it gets in the env).

        `state_weight` scales the state loss (a perceived state carries the scene's dynamics; its loss is
        tiny next to the frames' and otherwise gets little of the gradient)."""
        ctx, ctx_state = batch["ctx_latents"], batch["ctx_state"]
        if context_noise > 0:
            scale = torch.rand(ctx.shape[0], generator=generator).to(ctx.device) * context_noise
            ctx = ctx + scale.view(-1, *[1] * (ctx.dim() - 1)) * torch.randn(ctx.shape, generator=generator).to(ctx.device)
            noise_s = torch.randn(ctx_state.shape, generator=generator).to(ctx.device)
            ctx_state = ctx_state + scale.view(-1, 1, 1) * noise_s * batch["state_mask"][:, None].float()
        fut, act = batch["fut_latents"], batch["actions"]
        moving = ((batch["fut_latents"] - batch["ctx_latents"][:, -1:]).abs() > MOTION_THRESHOLD).float() \
            if motion_weight > 0 else 0.0
        if self.cfg.residual_frames:  # learn the change from the last (possibly corrupted) context frame
            fut = fut - ctx[:, -1:]
        fut_state = batch["fut_state"] - ctx_state[:, -1:] if self.cfg.residual_state else batch["fut_state"]
        b, dev = fut.shape[0], fut.device
        mode = torch.multinomial(torch.tensor(mode_probs, dtype=torch.float), b, replacement=True, generator=generator).to(dev)
        t_f = sample_time(b, self.cfg.time_shift, generator).to(dev)
        t_a = sample_time(b, self.cfg.time_shift, generator).to(dev)
        t_a = torch.where(mode == 0, 0.0, torch.where(mode == 3, 1.0, t_a))  # forward dyn: clean; video: noise
        if frame_t1_share > 0:
            t_f = torch.where(torch.rand(b, generator=generator).to(dev) < frame_t1_share, 1.0, t_f)
        t_f = torch.where(mode == 2, 0.0, t_f)  # inverse dynamics: frames clean
        noise_f = torch.randn(fut.shape, generator=generator).to(dev)
        noise_s = torch.randn(batch["fut_state"].shape, generator=generator).to(dev)
        noise_a = torch.randn(act.shape, generator=generator).to(dev)
        a_mask = batch["action_mask"][:, None].float()
        s_mask = batch["state_mask"][:, None].float()
        hint, teacher = None, None
        if self.cfg.conv_head_state:
            teacher = (torch.rand(b, generator=generator) < hint_teacher).to(dev)
            hint = batch["fut_state"] + hint_noise * torch.randn(batch["fut_state"].shape, generator=generator).to(dev)
        pred = self(
            batch["text_ids"], ctx, ctx_state,
            add_noise(fut, noise_f, t_f), add_noise(fut_state, noise_s, t_f) * s_mask,
            add_noise(act, noise_a, t_a) * a_mask, batch["domain"], t_f, t_a, hint, teacher,
        )
        w_f, w_a = (t_f > 0).float(), (t_a > 0).float()  # no loss on a group given clean
        if self.cfg.frame_prediction == "x0":
            err_f = (pred["frames_x0"] - fut) ** 2
        else:
            err_f = (pred["frames"] - velocity_target(fut, noise_f)) ** 2
        per_f = (err_f * (1 + motion_weight * moving)).flatten(1).mean(1)
        per_s = (((pred["state"] - velocity_target(fut_state, noise_s)) ** 2) * s_mask).sum((1, 2)) / (
            s_mask.sum((1, 2)) * fut.shape[1]).clamp_min(1)
        per_a = (((pred["actions"] - velocity_target(act, noise_a)) ** 2) * a_mask).sum((1, 2)) / (
            a_mask.sum((1, 2)) * act.shape[1]).clamp_min(1)
        loss_f = (per_f * w_f).sum() / w_f.sum().clamp_min(1)
        loss_s = (per_s * w_f).sum() / w_f.sum().clamp_min(1)
        loss_a = (per_a * w_a).sum() / w_a.sum().clamp_min(1)
        loss = loss_f + state_weight * loss_s + self.cfg.action_loss_weight * loss_a
        return {"loss": loss, "frames": loss_f.detach(), "state": loss_s.detach(), "actions": loss_a.detach()}

    def render_loss(self, batch: dict, generator: torch.Generator | None = None, hint_noise: float = 0.01,
                    noise_scale: float = 0.5) -> dict[str, torch.Tensor]:
        """Renderer pretraining of the conv frame head with `cfg.conv_head_state`: no transformer pass (token
        features are zero), the frame input is noise (t = 1, scaled by `noise_scale` as the sampler does),
        and the head draws the clean next frame from the true next state (+ noise of std `hint_noise`) and
        the last two context frames. Minutes on a CPU; the joint stage then starts from a head that draws."""
        if not self.cfg.conv_head_state:
            raise UserError("render_loss needs a conv frame head that reads the state (conv_head_state > 0)")
        fut, ctx = batch["fut_latents"], batch["ctx_latents"]
        b, F_, v, c, hh, ww = fut.shape
        hint = batch["fut_state"] + hint_noise * torch.randn(batch["fut_state"].shape, generator=generator).to(fut.device)
        x = noise_scale * torch.randn(fut.shape, generator=generator).to(fut.device)
        feats = torch.zeros(b, F_, v, HEAD_CHANNELS, hh, ww, device=fut.device)
        pred = self._conv_frames(feats, x, self._recent(ctx), hint[..., : self.cfg.conv_head_state])
        target = fut - ctx[:, -1:] if self.cfg.residual_frames else fut
        loss = ((pred - target) ** 2).mean()
        return {"loss": loss, "frames": loss.detach()}

    def render_state(self, state: torch.Tensor) -> torch.Tensor:
        """Frame latents (b, 1, c, h, w) drawn by the conv frame head from a state (b, state_dim) alone: no
        token features, no noise, no context frames (all zero), only the state's geometry planes. A head
        trained this way (`renderer.fit_renderer`) draws every frame afresh, so nothing blurs or drifts
        over a long rollout; the pose dynamics head supplies the state."""
        if not self.cfg.conv_head_state:
            raise UserError("render_state needs a conv frame head that reads the state (conv_head_state > 0)")
        b, c, g = state.shape[0], self.cfg.latent_channels, self.cfg.latent_size
        zeros = torch.zeros(b, 1, 1, c, g, g, device=state.device)
        feats = torch.zeros(b, 1, 1, HEAD_CHANNELS, g, g, device=state.device)
        recent = torch.zeros(b, 2, 1, c, g, g, device=state.device)
        return self._conv_frames(feats, zeros, recent, state[:, None, : self.cfg.conv_head_state])[:, 0]

    # ------------------------------------------------------------------ cached inference

    @torch.no_grad()
    def encode_prefix(self, text_ids, ctx_latents, ctx_state, domain) -> PrefixCache:
        """Keys/values of text + context, computed once per env step."""
        n_text, C, v = text_ids.shape[1], ctx_latents.shape[1], ctx_latents.shape[2]
        x = torch.cat([self.text_embed(text_ids), self._step_tokens(ctx_latents, ctx_state, domain)], dim=1)
        positions = torch.cat([text_positions(n_text), self._positions(n_text, 0, C, v)], dim=1)
        mask = attention_mask(n_text, C, 0, v * self.cfg.tokens_per_frame + 1).to(x.device)
        _, kv = self._run(x, n_text, positions, mask)
        return PrefixCache(kv, n_text, C, domain, self._recent(ctx_latents), ctx_state[:, -1])

    @torch.no_grad()
    def extend_prefix(self, cache: PrefixCache, new_latents, new_state) -> PrefixCache:
        """Append context steps to a cache (exact: earlier steps never attend to later ones)."""
        n_new, v = new_latents.shape[1], new_latents.shape[2]
        step = v * self.cfg.tokens_per_frame + 1
        x = self._step_tokens(new_latents, new_state, cache.domain)
        positions = self._positions(cache.n_text, cache.n_context, n_new, v)
        past_len = cache.kv[0][0].shape[2]
        own = torch.arange(n_new).repeat_interleave(step)
        mask = torch.cat([torch.ones(len(own), past_len, dtype=torch.bool), own[None, :] <= own[:, None]], dim=1)
        _, kv = self._run(x, 0, positions, mask.to(x.device), past=cache.kv)
        merged = [(torch.cat([pk, k], 2), torch.cat([pv, v_], 2)) for (pk, pv), (k, v_) in zip(cache.kv, kv)]
        recent = self._recent(torch.cat([cache.recent_latents, new_latents], dim=1))
        return PrefixCache(merged, cache.n_text, cache.n_context + n_new, cache.domain, recent, new_state[:, -1])

    def velocity(self, cache: PrefixCache, fut_latents, fut_state, actions, t_frames, t_actions, state_hint=None):
        """Velocities of the noisy tokens given a prefix cache (no recomputation of the prefix); a
        `state_hint` (b, F, S) is the future state the conv frame head draws from, instead of its own."""
        F_, v = fut_latents.shape[1], fut_latents.shape[2]
        x = torch.cat([self._step_tokens(fut_latents, fut_state, cache.domain, t_frames, actions),
                       self._action_tokens(actions, cache.domain, t_actions)], dim=1)
        positions = self._positions(cache.n_text, cache.n_context, F_, v, with_actions=True)
        h, _ = self._run(x, 0, positions, None, past=cache.kv)
        teacher = None if state_hint is None else torch.ones(h.shape[0], dtype=torch.bool, device=h.device)
        return self._heads(h, F_, v, cache.domain, fut_latents, t_frames, cache.recent_latents, fut_state,
                           state_hint, teacher, last_state=cache.last_state)

    @torch.no_grad()
    def sample(self, cache: PrefixCache, n_future: int, n_views: int, action_mask, state_mask,
               actions=None, fut_latents=None, fut_state=None, steps: int | None = None,
               generator: torch.Generator | None = None, noise_scale: float = 1.0,
               state_hint: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Euler sampling of whatever is not given: actions given -> forward dynamics; future frames
        given -> inverse dynamics; neither -> policy (actions and frames together). `noise_scale` < 1
        starts from shrunk noise (a temperature): 0 follows the flow from the mean, the model's
        conditional-mean prediction, fitting for deterministic dynamics. With `cfg.conv_head_state`, a
        `state_hint` (b, F, state_dim) is the future state the frames are drawn from (e.g. the pose dynamics
        head's prediction); the returned state is then that hint."""
        if state_hint is not None and not self.cfg.conv_head_state:
            raise UserError("state_hint needs a conv frame head that draws from the state (conv_head_state > 0)")
        cfg, dev = self.cfg, cache.domain.device
        b = cache.domain.shape[0]
        g, c = cfg.latent_size, cfg.latent_channels

        def noise(*shape):
            return noise_scale * torch.randn(*shape, generator=generator).to(dev)

        a_mask, s_mask = action_mask[:, None].float(), state_mask[:, None].float()
        gen_frames, gen_actions = fut_latents is None, actions is None
        base = cache.last_latents if cfg.residual_frames else torch.zeros((), device=dev)
        base_s = cache.last_state[:, None] * s_mask if cfg.residual_state else torch.zeros((), device=dev)
        x_f = noise(b, n_future, n_views, c, g, g) if gen_frames else fut_latents - base
        x_s = noise(b, n_future, cfg.state_dim) * s_mask if gen_frames else (fut_state - base_s) * s_mask
        x_a = noise(b, n_future, cfg.action_dim) * a_mask if gen_actions else actions * a_mask
        times = euler_schedule(cfg.sample_steps if steps is None else steps, cfg.time_shift)
        zero = torch.zeros(b, device=dev)
        for t, t_next in zip(times[:-1], times[1:]):
            tt = torch.full((b,), float(t), device=dev)
            v = self.velocity(cache, x_f, x_s, x_a, tt if gen_frames else zero, tt if gen_actions else zero,
                              state_hint)
            dt = float(t_next - t)
            if gen_frames:
                x_f, x_s = x_f + dt * v["frames"], (x_s + dt * v["state"]) * s_mask
            if gen_actions:
                x_a = (x_a + dt * v["actions"]) * a_mask
        state = x_s + base_s if state_hint is None else state_hint * s_mask
        return {"frames": x_f + base, "state": state, "actions": x_a}

    # ------------------------------------------------------------------ reasoner: judge and text

    def judge_logits(self, text_ids, latents) -> torch.Tensor:
        """Success logit (b,) of frames (b, v, c, h, w) for the instruction: a reasoner-only pass over
        [text, vision tokens of the frame, judge query], read at the query token."""
        b, n_text, v = text_ids.shape[0], text_ids.shape[1], latents.shape[1]
        g = self.cfg.grid_size
        vision = self.vision_in(self.patchify(latents[:, None])[:, 0]) + self.camera_embed(
            self._camera_ids(v, latents.device))
        query = self.text_embed(torch.full((b, 1), JUDGE, device=latents.device))
        x = torch.cat([self.text_embed(text_ids), vision, query], dim=1)
        vis_pos = torch.cat([grid_positions(n_text, g, g, col_offset=k * g) for k in range(v)], dim=1)
        vis_pos[1:] += n_text  # Qwen-VL style: spatial indices start at the segment's offset
        q_pos = int(vis_pos.max()) + 1
        positions = torch.cat([text_positions(n_text), vis_pos, text_positions(1, q_pos)], dim=1)
        L = x.shape[1]
        mask = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        h, _ = self._run(x, L, positions, mask)
        return self.judge_head(self.norm_out[REASONER](h[:, -1]))[:, 0]

    def judge_loss(self, text_ids, latents, success) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.judge_logits(text_ids, latents), success.float())

    # ------------------------------------------------------------------ checkpoints

    def save_pretrained(self, directory, max_shard_bytes: int = 2 * 1024**3, dtype=None, keep_full=()) -> None:
        from .checkpoint import save_pretrained

        save_pretrained(self, directory, max_shard_bytes, dtype, keep_full)

    @classmethod
    def from_pretrained(cls, directory, map_location: str = "cpu") -> WorldModel:
        from .checkpoint import from_pretrained

        return from_pretrained(cls, directory, map_location)
