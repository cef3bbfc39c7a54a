"""Pluggable image feature extractors for FID/KID: anything mapping uint8 images to vectors.

An extractor is an ``nn.Module`` whose forward takes uint8 (N, 3, H, W) and returns (N, D). Optional
attributes: ``name`` (shown in reports), ``input_size`` (hand crops are resized to it; 299 if absent),
``num_features``. Built-ins: the FID Inception from a local file (:mod:`handsynth.eval.inception`);
any other via ``import:package.module:factory`` (the factory is called with no arguments).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from handsynth.errors import UserError
from handsynth.progress import progress

DEFAULT_INPUT_SIZE = 299
WORLD = "world"  # the micro world's evaluation tools, shipped with the embedded default model


def extractor_name(extractor: nn.Module) -> str:
    return str(getattr(extractor, "name", type(extractor).__name__))


def extractor_input_size(extractor: nn.Module) -> int:
    return int(getattr(extractor, "input_size", DEFAULT_INPUT_SIZE))


def load_extractor(spec: str | None, inception_weights: str | None, device: str = "cpu") -> nn.Module:
    """Build the extractor named on the command line.

    ``spec`` None or "inception": the FID Inception from ``inception_weights`` (a .pth state dict or
    clean-fid TorchScript file). ``world``: the micro world's extractor (offline, trained on 64² world
    photos: numbers comparable only among images of that world). ``import:pkg.mod:factory``: a user module.
    """
    if spec is None or spec == "inception":
        if not inception_weights:
            raise UserError(
                "FID/KID need Inception weights: pass --inception-weights FILE (pytorch-fid/torch-fidelity .pth "
                "or clean-fid .pt), or --extractor import:module:factory"
            )
        from handsynth.eval.inception import load_inception

        return load_inception(inception_weights, device=device)
    if spec == WORLD:  # the lab's extractor: the command layer builds it (eval does not import micro)
        raise UserError(
            "--extractor world is resolved by `handsynth evaluate images`; pass the module itself"
        )
    if spec.startswith("import:"):
        target = spec[len("import:") :]
        mod_name, _, attr = target.partition(":")
        if not mod_name or not attr:
            raise UserError(f"--extractor {spec}: write it as import:package.module:factory")
        try:
            factory: Callable[[], nn.Module] = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as err:
            raise UserError(f"--extractor {spec}: cannot import it ({err})") from err
        model = factory()
        if not isinstance(model, nn.Module):
            raise UserError(f"--extractor {spec}: the factory must return a torch nn.Module")
        return model.eval().to(device)
    raise UserError(f"--extractor {spec}: unknown; use 'inception', 'world' or import:package.module:factory")


def to_tensor(images: Iterable[np.ndarray]) -> torch.Tensor:
    """Stack uint8 HxWx3 arrays of one size into (N, 3, H, W)."""
    return (
        torch.from_numpy(np.stack([np.ascontiguousarray(a) for a in images])).permute(0, 3, 1, 2).contiguous()
    )


@torch.no_grad()
def extract_features(
    extractor: nn.Module,
    images: Iterable[np.ndarray],
    batch_size: int = 32,
    desc: str = "features",
    total: int | None = None,
) -> np.ndarray:
    """Features (N, D) float64 of uint8 HxWx3 images, batched by consecutive runs of equal size."""
    device = next(iter(extractor.parameters()), torch.empty(0)).device
    feats: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            out = extractor(to_tensor(batch).to(device))
            feats.append(out.reshape(len(batch), -1).double().cpu().numpy())
            batch.clear()

    for img in progress(images, desc=desc, total=total, unit="img"):
        if batch and (img.shape != batch[0].shape or len(batch) >= batch_size):
            flush()
        batch.append(img)
    flush()
    if not feats:
        return np.zeros((0, 0))
    return np.concatenate(feats)
