"""CLIP score (image-text alignment) from a local ``transformers`` CLIP folder, computed directly.

CLIP score = 100 × max(cos(image embedding, text embedding), 0), averaged over images (the formula
torchmetrics documents; its own ``CLIPScore`` does not run with transformers 5 here, and its code clamps
the mean rather than each image, which differs only when some cosine is negative). Images are resized so
the short side equals the model's image size (bicubic), centre-cropped and normalised with the mean /
std of the folder's ``preprocessor_config.json`` (OpenAI CLIP's when absent). Prompts longer than the
text model's context are truncated. The tokenizer comes from the folder, or, if the folder has none,
the offline SD/CLIP tokenizer of :mod:`handsynth.text.tokenizer` (same BPE vocabulary).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handsynth.errors import UserError
from handsynth.text.tokenizer import clip_tokenizer

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipScorer:
    """Loads a CLIP model folder once and scores (image, prompt) pairs."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from transformers import CLIPModel

        p = Path(path)
        if not (p / "config.json").is_file():
            raise UserError(f"--clip {p}: not a transformers CLIP folder (no config.json)")
        self.model = CLIPModel.from_pretrained(str(p), local_files_only=True).eval().to(device)
        self.device = device
        self.name = f"CLIP ({p.name})"
        self.tokenizer = self._tokenizer(p)
        self.size = int(self.model.config.vision_config.image_size)
        mean, std = OPENAI_MEAN, OPENAI_STD
        pp = p / "preprocessor_config.json"
        if pp.is_file():
            cfg = json.loads(pp.read_text())
            mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    @staticmethod
    def _tokenizer(p: Path):
        from transformers import CLIPTokenizer

        if (p / "vocab.json").is_file() or (p / "tokenizer.json").is_file():
            return CLIPTokenizer.from_pretrained(str(p), local_files_only=True)

        return clip_tokenizer()

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 HxWx3 -> normalised (1, 3, S, S)."""
        im = Image.fromarray(image[..., :3])
        w, h = im.size
        scale = self.size / min(w, h)
        im = im.resize((max(self.size, int(w * scale)), max(self.size, int(h * scale))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        im = im.crop((left, top, left + self.size, top + self.size))
        x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        return (x - self.mean) / self.std

    @torch.no_grad()
    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        out = self.model.get_text_features(input_ids=tok["input_ids"].to(self.device))
        out = getattr(out, "pooler_output", out)
        return torch.nn.functional.normalize(out.float(), dim=-1)

    @torch.no_grad()
    def embed_images(self, images: list[np.ndarray]) -> torch.Tensor:
        x = torch.cat([self.preprocess(im) for im in images]).to(self.device)
        out = self.model.get_image_features(pixel_values=x)
        out = getattr(out, "pooler_output", out)
        return torch.nn.functional.normalize(out.float(), dim=-1)

    def score(self, images: list[np.ndarray], prompts: list[str]) -> np.ndarray:
        """Per-pair CLIP scores (N,)."""
        cos = (self.embed_images(images) * self.embed_text(prompts)).sum(-1)
        return (100.0 * cos.clamp(min=0)).cpu().numpy().astype(np.float64)
