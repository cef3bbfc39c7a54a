"""Captions from an OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp server, ...).

Why: large VLMs are usually served, not loaded in-process. Images go inline as base64 data URLs;
requests run concurrently up to a limit, each with a timeout and retries with exponential back-off
on transport errors, 429/5xx answers and malformed JSON. A request that still fails gives None, so
the record stays uncaptioned and a rerun picks it up (the dataset loop skips captioned records).
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from handsynth.errors import UserError
from handsynth.text.captioner import ChatBackend, ChatRequest, clean_answer

log = logging.getLogger(__name__)


class _Retryable(Exception):
    pass


def endpoint(base_url: str, path: str = "chat/completions") -> str:
    """``http://host:8000`` / ``.../v1`` / ``.../v1/chat/completions`` -> the ``path`` endpoint."""
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    if not url.endswith("/v1"):
        url += "/v1"
    return f"{url}/{path}"


def image_data_url(image: Any, fmt: str = "JPEG", max_side: int | None = None) -> str:
    """A PIL image as an inline ``data:`` URL (optionally downscaled so its longer side is ``max_side``)."""
    img = image.convert("RGB")
    if max_side and max(img.size) > max_side:
        s = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def message_text(payload: Any) -> str:
    """The answer text of a chat-completions response; raises _Retryable when it is malformed."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Retryable("response has no choices[0].message.content") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise _Retryable("message content is not text")
    return content


class OpenAICaptioner(ChatBackend):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_tokens: int = 256,
        temperature: float = 0.0,
        image_format: str = "JPEG",
        max_image_side: int | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"--base-url {base_url!r} must start with http:// or https://")
        self.base_url = base_url
        self.url = endpoint(base_url)
        self.api_key = api_key
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.image_format = image_format.upper()
        self.max_image_side = max_image_side
        self.model = model or self._first_model()

    @classmethod
    def from_options(
        cls, base_url: str | None = None, model: str | None = None, **opts: Any
    ) -> OpenAICaptioner:
        if not base_url:
            raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        key_env = opts.pop("api_key_env", None) or "OPENAI_API_KEY"
        keys = ("concurrency", "timeout", "retries", "backoff", "max_tokens", "max_image_side")
        kw = {k: opts[k] for k in keys if opts.get(k) is not None}
        if "max_new_tokens" in opts and opts["max_new_tokens"] is not None:
            kw["max_tokens"] = opts["max_new_tokens"]
        return cls(base_url, model, api_key=os.environ.get(key_env), **kw)

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _first_model(self) -> str:
        """The server's first model id (``GET /v1/models``) when the user gave none."""
        req = urllib.request.Request(endpoint(self.base_url, "models"), headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())["data"][0]["id"]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
            raise UserError(
                f"could not list models at {endpoint(self.base_url, 'models')} ({err}); pass --model"
            ) from None

    def payload(self, req: ChatRequest) -> dict:
        content: list[dict] = [{"type": "text", "text": req.text}]
        if req.image is not None:
            url = image_data_url(req.image, self.image_format, self.max_image_side)
            content.append({"type": "image_url", "image_url": {"url": url}})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def _post(self, body: bytes) -> str:
        req = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as err:
            if err.code == 429 or err.code >= 500:
                raise _Retryable(f"HTTP {err.code}") from None
            detail = err.read()[:200].decode("utf-8", "replace")
            raise RuntimeError(f"HTTP {err.code}: {detail}") from None
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets
            raise _Retryable(f"{type(err).__name__}: {err}") from None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise _Retryable("malformed JSON in the response") from None
        return message_text(payload)

    def ask(self, req: ChatRequest) -> str | None:
        """One request with retries; None when it finally fails."""
        body = json.dumps(self.payload(req)).encode()
        for attempt in range(self.retries + 1):
            try:
                return clean_answer(self._post(body))
            except _Retryable as err:
                if attempt == self.retries:
                    log.warning("request to %s failed after %d attempts: %s", self.url, attempt + 1, err)
                    return None
                time.sleep(self.backoff * 2**attempt)
            except RuntimeError as err:  # 4xx: retrying cannot help
                log.warning("request to %s refused: %s", self.url, err)
                return None
        return None

    def chat(self, requests: list[ChatRequest]) -> list[str | None]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self.ask, requests))
