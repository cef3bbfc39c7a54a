"""Hand structure attention enhancement (HSA, SesaHand): a pre-softmax bias on hand tokens in the hand region.

Why: SesaHand raises the model's attention on the hand "cheaply". Its code is not public; this project
reads it as ``logits[q, k] += beta`` for cross-attention queries ``q`` inside the hand region and keys
``k`` at the prompt's hand-token positions (:func:`handsynth.text.tagging.hand_token_indices`), in
every cross-attention layer and head of the UNet (and ControlNet), at training and inference time.
Unlike TAS there are no gradient steps on the latents: the bias rides along in the ordinary forward.

How: each cross-attention layer gets a :class:`HandBiasAttnProcessor` that wraps the layer's previous
processor and hands it the bias as an additive float ``attention_mask`` (B, Q, K); diffusers' SDPA
processor turns it into ``F.scaled_dot_product_attention(attn_mask=...)`` of shape (B, heads, Q, K),
and the attention store's explicit path adds it before its softmax, so capture sees the biased maps.
When the wrapped processor is exactly diffusers' ``AttnProcessor2_0`` (the usual case), HSA runs that
computation itself with the bias broadcast over heads, (B, 1, Q, K), instead of the per-head copy the
generic route makes (tested equal; cheaper at SD sizes).
Self-attention layers are untouched. The hand mask is area-resampled to each layer's query grid (any
latent aspect ratio). With classifier-free guidance the batch is ``[unconditional, conditional]``
(diffusers' order and ours): by default (``cfg_uncond='none'``) the unconditional half gets no bias —
its prompt has no hand tokens, so the positions would name padding; ``'same'`` biases both halves.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MASK_MODES = ("soft", "hard")
LEARNABLE = ("none", "per_layer")
SCHEDULES = ("constant", "timestep")
CFG_UNCOND = ("none", "same")


@dataclass
class HSAConfig:
    """``bias``: beta added to the logits (1.0 multiplies a hand token's unnormalised weight by e);
    ``mask``: soft area weights in [0, 1] or hard (area >= 0.5); ``learnable: per_layer`` makes beta one
    parameter per layer (initialised to ``bias``); ``schedule: timestep`` scales beta linearly from 1 at
    t = T-1 down to ``schedule_min`` at t = 0 (strongest while the structure forms, as TAS's alpha_t);
    ``cfg_uncond``: bias the unconditional CFG half (``same``) or not (``none``); ``enabled`` is read by
    the method that decides whether to call :func:`install_hand_bias` at all."""

    enabled: bool = True
    bias: float = 1.0
    mask: str = "soft"
    learnable: str = "none"
    schedule: str = "constant"
    schedule_min: float = 0.5
    num_train_timesteps: int = 1000
    cfg_uncond: str = "none"

    def __post_init__(self) -> None:
        for key, allowed in (
            ("mask", MASK_MODES),
            ("learnable", LEARNABLE),
            ("schedule", SCHEDULES),
            ("cfg_uncond", CFG_UNCOND),
        ):
            if getattr(self, key) not in allowed:
                raise ValueError(f"hsa.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if not math.isfinite(self.bias):
            raise ValueError(f"hsa.bias must be a finite number, got {self.bias!r}")
        if not 0.0 <= self.schedule_min <= 1.0:
            raise ValueError(f"hsa.schedule_min must lie in [0, 1], got {self.schedule_min!r}")


def query_grid(latent_hw: tuple[int, int], num_queries: int) -> tuple[int, int]:
    """The (h, w) query grid of a layer with ``num_queries`` queries for ``latent_hw`` latents.

    UNet levels halve the latent with ceil rounding, so the grid is (ceil(h/f), ceil(w/f)) for the
    power of two f whose product matches (unique: the products fall strictly until 1x1).
    """
    h, w = latent_hw
    f = 1
    while True:
        grid = (math.ceil(h / f), math.ceil(w / f))
        if grid[0] * grid[1] == num_queries:
            return grid
        if grid == (1, 1) or f > 1024:
            raise ValueError(f"{num_queries} queries match no level of a {h}x{w} latent")
        f *= 2


class HandBias(torch.nn.Module):
    """The HSA state and handle: per-batch masks and hand tokens, beta (learnable or not), uninstall.

    Use :meth:`conditioning` around the forward passes of one batch; ``parameters()`` holds the
    per-layer betas when ``learnable='per_layer'`` (give them to the optimizer).
    """

    def __init__(self, config: HSAConfig) -> None:
        super().__init__()
        self.config = config
        self.betas = torch.nn.ParameterDict()
        self._modules_hooked: list[tuple[torch.nn.Module, str, object]] = []
        self._masks: torch.Tensor | None = None  # (B, 1, H, W) float in [0, 1]
        self._tokens: list[list[int]] | None = None
        self._latent_hw: tuple[int, int] | None = None
        self._fixed_latent_hw: tuple[int, int] | None = None
        self._timesteps: torch.Tensor | None = None
        self._fixed_timesteps: torch.Tensor | None = None
        self._grid_cache: dict[tuple, torch.Tensor] = {}

    # -- per batch ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def conditioning(
        self,
        masks: torch.Tensor,
        token_indices: Sequence[Sequence[int]],
        latent_hw: tuple[int, int] | None = None,
        timesteps: torch.Tensor | float | None = None,
    ) -> Iterator[HandBias]:
        """Bias the forwards inside the block with ``masks`` (B, H, W) or (B, 1, H, W) and hand tokens.

        ``latent_hw`` and ``timesteps`` default to what the hooked UNet/ControlNet forward receives.
        With gradient checkpointing, call ``backward()`` inside the block too: the recomputed
        forward must see the same bias.
        """
        if masks.ndim == 3:
            masks = masks[:, None]
        if masks.ndim != 4 or masks.shape[1] != 1:
            raise ValueError(f"hand masks must be (B, H, W) or (B, 1, H, W), got {tuple(masks.shape)}")
        if masks.shape[0] != len(token_indices):
            raise ValueError(
                f"{masks.shape[0]} hand masks but {len(token_indices)} token lists: give one per sample"
            )
        masks = masks.float()
        if masks.numel() and (masks.min() < 0 or masks.max() > 1):
            raise ValueError("hand masks must hold weights in [0, 1] (seg in {1, 2} or the mesh mask)")
        self._masks, self._tokens = masks, [list(map(int, t)) for t in token_indices]
        self._fixed_latent_hw = tuple(latent_hw) if latent_hw is not None else None
        self._fixed_timesteps = None if timesteps is None else torch.as_tensor(timesteps).flatten()
        self._grid_cache = {}
        try:
            yield self
        finally:
            self._masks, self._tokens, self._grid_cache = None, None, {}
            self._fixed_latent_hw = self._fixed_timesteps = None

    def _observe(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        """Forward pre-hook: the latent size and timesteps of the running UNet/ControlNet call."""
        sample = args[0] if args else kwargs.get("sample")
        timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
        if sample is not None:
            self._latent_hw = tuple(sample.shape[-2:])
        self._timesteps = None if timestep is None else torch.as_tensor(timestep).flatten()

    # -- the bias ----------------------------------------------------------------------------------
    def beta(self, layer: str) -> torch.Tensor | float:
        return self.betas.get(layer, self.config.bias)

    def _schedule(self, batch: int, device: torch.device) -> torch.Tensor | None:
        if self.config.schedule == "constant":
            return None
        t = self._fixed_timesteps if self._fixed_timesteps is not None else self._timesteps
        if t is None:
            raise RuntimeError("hsa.schedule=timestep needs the timestep: pass timesteps= to conditioning()")
        t = t.to(device=device, dtype=torch.float32)
        if t.numel() == 1:
            t = t.expand(batch)
        elif 2 * t.numel() == batch:  # one timestep per sample, CFG batch
            t = torch.cat([t, t])
        elif t.numel() != batch:
            raise ValueError(f"{t.numel()} timesteps for a batch of {batch}")
        frac = (t / max(self.config.num_train_timesteps - 1, 1)).clamp(0, 1)
        return self.config.schedule_min + (1 - self.config.schedule_min) * frac

    def _query_weights(self, num_queries: int, device: torch.device) -> torch.Tensor:
        """(B, Q) hand weights of the queries at this layer's grid (cached per batch)."""
        latent_hw = self._fixed_latent_hw or self._latent_hw
        if latent_hw is None:
            raise RuntimeError("HSA does not know the latent size: pass latent_hw= to conditioning()")
        key = (num_queries, tuple(latent_hw), str(device))
        if key not in self._grid_cache:
            grid = query_grid(latent_hw, num_queries)
            w = F.adaptive_avg_pool2d(self._masks.to(device), grid)  # area resampling, any aspect ratio
            if self.config.mask == "hard":
                w = (w >= 0.5).float()
            self._grid_cache[key] = w.flatten(1)
        return self._grid_cache[key]

    def _token_weights(self, num_keys: int, device: torch.device) -> torch.Tensor:
        """(B, K) indicator of the hand-token positions (cached per batch)."""
        key = ("tokens", num_keys, str(device))
        if key not in self._grid_cache:
            tokens = torch.zeros(len(self._tokens), num_keys, device=device)
            for b, idx in enumerate(self._tokens):
                bad = [i for i in idx if not 0 <= i < num_keys]
                if bad:
                    raise ValueError(
                        f"hand-token positions {bad} of sample {b} lie beyond the {num_keys} text tokens"
                    )
                tokens[b, idx] = 1.0
            self._grid_cache[key] = tokens
        return self._grid_cache[key]

    def bias(
        self,
        layer: str,
        num_queries: int,
        num_keys: int,
        batch: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor | None:
        """The additive (batch, Q, K) logit bias for one layer call, or None when it would be all zero."""
        if self._masks is None or not any(self._tokens):
            return None
        beta = self.beta(layer)
        if isinstance(beta, float) and beta == 0.0:
            return None
        n = self._masks.shape[0]
        if batch not in (n, 2 * n):
            raise ValueError(
                f"HSA was given {n} masks but the attention batch is {batch} (expected {n} or {2 * n})"
            )
        tokens = self._token_weights(num_keys, device)
        q = self._query_weights(num_queries, device)
        if batch == 2 * n:  # classifier-free guidance: [unconditional, conditional]
            same = self.config.cfg_uncond == "same"
            q = torch.cat([q if same else torch.zeros_like(q), q])
            tokens = torch.cat([tokens, tokens])
        scale = self._schedule(batch, device)
        if scale is not None:
            q = q * scale[:, None]
        out = q[:, :, None] * tokens[:, None, :] * beta
        return out.to(dtype)


class HandBiasAttnProcessor:
    """Cross-attention processor adding the HSA bias to the logits, then deferring to ``inner``.

    ``keeps_store_inside``: :func:`handsynth.diffusion.attention.install_attention_store` puts its
    storing processor inside this one, so captured maps include the bias whichever is installed first.
    """

    keeps_store_inside = True

    def __init__(self, state: HandBias, name: str, inner) -> None:
        self.state = state
        self.name = name
        self.inner = inner

    def __call__(
        self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None, *rest, **kw
    ):
        """diffusers' processor call; ``rest``/``kw`` (temb, ...) go to ``inner`` untouched."""
        bias = None
        if encoder_hidden_states is not None:
            num_queries = (
                hidden_states.shape[1] if hidden_states.ndim == 3 else math.prod(hidden_states.shape[2:])
            )
            bias = self.state.bias(
                self.name,
                num_queries,
                encoder_hidden_states.shape[1],
                hidden_states.shape[0],
                hidden_states.dtype,
                hidden_states.device,
            )
        plain = bias is not None and attention_mask is None and not rest and not kw
        if plain and self._plain_sdpa(attn, hidden_states):
            return _biased_sdpa(attn, hidden_states, encoder_hidden_states, bias)
        if bias is not None:
            if attention_mask is not None:  # a caller's own (B, 1 or Q, K) additive mask stays in
                if attention_mask.ndim != 3 or attention_mask.shape[0] != bias.shape[0]:
                    raise ValueError(
                        f"HSA cannot combine with an attention mask of shape {tuple(attention_mask.shape)}"
                    )
                bias = bias + attention_mask.to(bias.dtype)
            attention_mask = bias
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *rest, **kw)

    def _plain_sdpa(self, attn, hidden_states: torch.Tensor) -> bool:
        """Would ``inner`` run diffusers' plain SDPA processor here? Then HSA runs it itself, with the
        bias broadcast over heads (the generic route repeats it per head: 1.2-1.7x the attention op)."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        from handsynth.diffusion.attention import StoringAttnProcessor

        inner = self.inner
        if isinstance(inner, StoringAttnProcessor):
            if inner.store.wants(hidden_states.shape[1]):
                return False  # capture: the store's explicit path adds the bias itself
            inner = inner.fallback
        return type(inner) is AttnProcessor2_0 and hidden_states.ndim == 3 and attn.spatial_norm is None


def _biased_sdpa(
    attn, hidden_states: torch.Tensor, context: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """What ``AttnProcessor2_0`` computes for 3-D cross-attention, with ``bias`` (B, Q, K) on the logits."""
    residual = hidden_states
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    if attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    batch, heads = hidden_states.shape[0], attn.heads

    def split(x: torch.Tensor) -> torch.Tensor:  # (B, N, heads*d) -> (B, heads, N, d)
        return x.view(batch, x.shape[1], heads, x.shape[2] // heads).transpose(1, 2)

    query, key, value = split(attn.to_q(hidden_states)), split(attn.to_k(context)), split(attn.to_v(context))
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias[:, None], dropout_p=0.0)
    out = out.transpose(1, 2).reshape(batch, -1, heads * query.shape[-1]).to(query.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


def install_hand_bias(
    modules: dict[str, torch.nn.Module] | torch.nn.Module, config: HSAConfig | None = None
) -> HandBias:
    """Install HSA on every cross-attention layer of each module (e.g. ``{"unet": u, "controlnet": c}``).

    Returns the :class:`HandBias` handle; :func:`remove_hand_bias` puts the previous processors back.
    """
    config = config or HSAConfig()
    if isinstance(modules, torch.nn.Module):
        modules = {"unet": modules}
    state = HandBias(config)
    for key, module in modules.items():
        if getattr(module, "_handsynth_hand_bias", None) is not None:
            raise ValueError(f"{key} already has HSA installed: remove_hand_bias() it first")
        procs = {}
        for name, proc in module.attn_processors.items():
            if name.endswith("attn2.processor"):
                layer = f"{key}.{name[: -len('.processor')]}"
                if config.learnable == "per_layer":
                    state.betas[layer.replace(".", "__")] = torch.nn.Parameter(
                        torch.tensor(float(config.bias), device=module.device)
                    )
                procs[name] = HandBiasAttnProcessor(state, layer.replace(".", "__"), proc)
            else:
                procs[name] = proc
        module.set_attn_processor(procs)
        hook = module.register_forward_pre_hook(state._observe, with_kwargs=True)
        # Not a submodule: the betas must stay out of the net's parameters() and state_dict().
        module.__dict__["_handsynth_hand_bias"] = state
        state._modules_hooked.append((module, key, hook))
    return state


def remove_hand_bias(state: HandBias) -> None:
    """Uninstall HSA from every module it was installed on (the attention store, if any, stays)."""
    for module, _, hook in state._modules_hooked:
        procs = {
            name: proc.inner if isinstance(proc, HandBiasAttnProcessor) else proc
            for name, proc in module.attn_processors.items()
        }
        module.set_attn_processor(procs)
        hook.remove()
        module.__dict__["_handsynth_hand_bias"] = None
    state._modules_hooked = []
