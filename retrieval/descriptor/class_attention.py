"""The class token's attention to the patch tokens in a vision transformer's last block — the attention maps of
DINO (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021), which pick out the
object; here, which patch tokens to keep as local features (:mod:`retrieval.local.cnn_patches`).

:class:`ClassAttention` hooks timm's last ``Block.attn`` (its ``qkv``, ``num_heads``, ``head_dim``, ``scale``,
``q_norm`` and ``k_norm``) and recomputes, from the block's input, the class token's softmax attention over all
tokens, averaged over heads — the same weights the block uses, whichever attention kernel runs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from retrieval.descriptor.backbones import TokenLayout

_ATTENTION_PARTS = ("qkv", "num_heads", "head_dim", "scale", "q_norm", "k_norm")


def last_attention(backbone: nn.Module, layout: Any) -> nn.Module:
    """The last block's attention module of a ViT with a class token.

    Raises:
        ValueError: the backbone has no class token, or no timm attention in its last block.
    """
    if not isinstance(layout, TokenLayout) or not layout.has_class_token:
        raise ValueError("patch selection by attention needs a vision transformer with a class token")
    blocks = getattr(backbone, "blocks", None)
    attention = getattr(blocks[-1], "attn", None) if blocks is not None and len(blocks) else None
    if attention is None or not all(hasattr(attention, part) for part in _ATTENTION_PARTS):
        raise ValueError(
            f"patch selection by attention needs timm attention ({', '.join(_ATTENTION_PARTS)}) in the last "
            f"block; {type(backbone).__name__} has {type(attention).__name__}"
        )
    return attention


def class_attention(attention: Any, tokens: torch.Tensor) -> torch.Tensor:
    """(B, N) attention of the class token (token 0) to every token of ``tokens`` (B, N, C), mean over heads;
    ``attention`` is a timm ``Attention`` (:func:`last_attention`)."""
    batch, count, _ = tokens.shape
    qkv = attention.qkv(tokens).reshape(batch, count, 3, attention.num_heads, attention.head_dim)
    query, key, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, d) each
    query, key = attention.q_norm(query), attention.k_norm(key)
    logits = (query[:, :, :1] * attention.scale) @ key.transpose(-2, -1)  # (B, H, 1, N)
    return logits.softmax(dim=-1).mean(dim=1)[:, 0]


class ClassAttention:
    """While :meth:`recording`, every forward pass of the backbone leaves its class-token attention to the patch
    tokens in :attr:`patches` ((B, h·w), prefix tokens dropped)."""

    def __init__(self, backbone: nn.Module, layout: Any):
        self.attention = last_attention(backbone, layout)
        self.num_prefix_tokens = int(layout.num_prefix_tokens)
        self.patches: torch.Tensor | None = None

    def _record(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.patches = class_attention(module, inputs[0])[:, self.num_prefix_tokens :]

    @contextmanager
    def recording(self) -> Iterator[ClassAttention]:
        """Record the forward passes run inside; :attr:`patches` then holds the last one's attention."""
        self.patches = None
        handle = self.attention.register_forward_pre_hook(self._record)
        try:
            yield self
        finally:
            handle.remove()
