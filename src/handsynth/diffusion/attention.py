"""The one cross-attention store: capture head- and layer-averaged attention maps through processors.

Capture goes through diffusers' attention-processor API (``unet.set_attn_processor``), never by
patching ``forward``. Each cross-attention layer gets a :class:`StoringAttnProcessor` that wraps the
layer's previous processor: while the store is inactive, or for layers at other query resolutions, it
calls that processor unchanged (SDPA, no probability matrix), so capture costs nothing when TAS is off.
While active it computes the probabilities explicitly at the configured query resolution only,
averages them over heads and keeps a running sum over layers (and over calls, e.g. denoising steps).

``stop_early`` ends the UNet forward (by raising :class:`StopForward`) right after the last layer whose
attention is read, so the latent-gradient pass of TAS never runs the high-resolution decoder blocks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch


class StopForward(Exception):
    """Raised inside the UNet once every layer the store needs has been captured."""


def layer_downsampling(name: str, num_levels: int) -> int:
    """How many times smaller than the latent the queries of processor ``name`` are (SD UNet layout)."""
    if name.startswith("down_blocks."):
        return 2 ** int(name.split(".")[1])
    if name.startswith("mid_block"):
        return 2 ** (num_levels - 1)
    if name.startswith("up_blocks."):
        return 2 ** (num_levels - 1 - int(name.split(".")[1]))
    raise ValueError(f"unexpected attention processor name {name!r}")


class AttentionStore:
    """Running sum of cross-attention probabilities (B, Q, T) at one query resolution."""

    def __init__(self) -> None:
        self.active = False
        self.query_hw: tuple[int, int] | None = None
        self.stop_early = False
        self.layer_factors: dict[str, int] = {}  # processor name -> downsampling of its queries
        self._expected: set[str] = set()
        self._seen: set[str] = set()
        self._sum: torch.Tensor | None = None
        self._count = 0

    # -- capture -----------------------------------------------------------------------------------
    def reset(self) -> None:
        self._sum, self._count, self._seen = None, 0, set()

    @contextlib.contextmanager
    def capture(
        self, query_hw: tuple[int, int], latent_hw: tuple[int, int] | None = None, stop_early: bool = False
    ) -> Iterator[AttentionStore]:
        """Capture maps at ``query_hw`` inside the block; ``stop_early`` needs ``latent_hw``."""
        self.reset()
        self.active, self.query_hw = True, (int(query_hw[0]), int(query_hw[1]))
        self.stop_early = bool(stop_early and latent_hw is not None)
        if self.stop_early:
            self._expected = self.layers_at(query_hw, latent_hw)
            if not self._expected:
                raise ValueError(
                    f"no cross-attention layer runs at {query_hw[0]}x{query_hw[1]} queries for "
                    f"{latent_hw[0]}x{latent_hw[1]} latents; pick another attention resolution"
                )
        try:
            yield self
        finally:
            self.active, self.stop_early = False, False

    def layers_at(self, query_hw: tuple[int, int], latent_hw: tuple[int, int]) -> set[str]:
        """Names of the cross-attention layers whose queries are ``query_hw`` for ``latent_hw`` latents."""
        return {
            name
            for name, f in self.layer_factors.items()
            if (math.ceil(latent_hw[0] / f), math.ceil(latent_hw[1] / f)) == tuple(query_hw)
        }

    def wants(self, num_queries: int) -> bool:
        return (
            self.active and self.query_hw is not None and num_queries == self.query_hw[0] * self.query_hw[1]
        )

    def add(self, name: str, probs: torch.Tensor, heads: int) -> None:
        """Add one layer's probabilities (B*heads, Q, T), averaged over heads."""
        bh, q, t = probs.shape
        avg = probs.float().reshape(bh // heads, heads, q, t).mean(1)
        self._sum = avg if self._sum is None else self._sum + avg
        self._count += 1
        self._seen.add(name)
        if self.stop_early and self._expected <= self._seen:
            raise StopForward

    @property
    def num_layers(self) -> int:
        return self._count

    def maps(self) -> torch.Tensor:
        """Average over captured layers (and calls): (B, h, w, T)."""
        if self._sum is None:
            raise RuntimeError(
                "no cross-attention was captured: is the resolution right and the store installed?"
            )
        h, w = self.query_hw
        avg = self._sum / self._count
        return avg.reshape(avg.shape[0], h, w, avg.shape[-1])


class StoringAttnProcessor:
    """Cross-attention processor that feeds an :class:`AttentionStore` and otherwise defers to ``fallback``."""

    def __init__(self, store: AttentionStore, name: str, fallback: Callable) -> None:
        self.store = store
        self.name = name
        self.fallback = fallback

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if (
            encoder_hidden_states is None
            or hidden_states.ndim != 3
            or not self.store.wants(hidden_states.shape[1])
        ):
            return self.fallback(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
            )
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        batch_size, _, _ = encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(
            attention_mask, encoder_hidden_states.shape[1], batch_size
        )
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query, key, value = (attn.head_to_batch_dim(x) for x in (query, key, value))
        probs = attn.get_attention_scores(query, key, attention_mask)
        out = torch.bmm(probs, value)
        out = attn.batch_to_head_dim(out)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        out = out / attn.rescale_output_factor
        self.store.add(self.name, probs, attn.heads)  # may raise StopForward: after the layer's own work
        return out


def install_attention_store(unet: torch.nn.Module, store: AttentionStore | None = None) -> AttentionStore:
    """Give every cross-attention layer of ``unet`` a storing processor (idempotent); returns the store."""
    existing = getattr(unet, "_handsynth_attention_store", None)
    if existing is not None:
        return existing
    store = store or AttentionStore()
    num_levels = len(unet.config.block_out_channels)
    procs = {}
    for name, proc in unet.attn_processors.items():
        if name.endswith("attn2.processor"):
            layer = name[: -len(".processor")]
            store.layer_factors[layer] = layer_downsampling(layer, num_levels)
            if getattr(proc, "keeps_store_inside", False):  # e.g. HSA: capture must see its bias
                proc.inner = StoringAttnProcessor(store, layer, proc.inner)
                procs[name] = proc
            else:
                procs[name] = StoringAttnProcessor(store, layer, proc)
        else:
            procs[name] = proc
    unet.set_attn_processor(procs)
    unet._handsynth_attention_store = store
    return store


def remove_attention_store(unet: torch.nn.Module) -> None:
    """Put back the processors that were there before :func:`install_attention_store`."""
    procs = {}
    for name, proc in unet.attn_processors.items():
        if getattr(proc, "keeps_store_inside", False) and isinstance(proc.inner, StoringAttnProcessor):
            proc.inner = proc.inner.fallback
        procs[name] = proc.fallback if isinstance(proc, StoringAttnProcessor) else proc
    unet.set_attn_processor(procs)
    unet._handsynth_attention_store = None


@contextlib.contextmanager
def checkpointing_off(*modules: torch.nn.Module) -> Iterator[None]:
    """Run without gradient checkpointing: a recomputed block would call the storing processors again."""
    flagged = [
        m for root in modules for m in root.modules() if getattr(m, "gradient_checkpointing", False) is True
    ]
    for m in flagged:
        m.gradient_checkpointing = False
    try:
        yield
    finally:
        for m in flagged:
            m.gradient_checkpointing = True


def run_and_capture(
    forward: Callable[[torch.Tensor], object],
    store: AttentionStore,
    latents: torch.Tensor,
    query_hw: tuple[int, int],
    stop_early: bool = False,
) -> torch.Tensor:
    """Run ``forward(latents)`` while capturing; return the maps (B, h, w, T)."""
    with store.capture(query_hw, latents.shape[-2:], stop_early=stop_early):
        with contextlib.suppress(StopForward):
            forward(latents)
        return store.maps()
