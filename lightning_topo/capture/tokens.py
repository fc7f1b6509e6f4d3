"""How a layer output of tokens is read: a vision transformer's patch tokens as a conv map, a text sequence as a
2-D volume; pooled tokens for the point-cloud view.

A transformer block returns ``(B, T, D)``: T tokens of width D per input. The cubical view reads a conv map
``(C, H, W)`` as a 3-D grey-scale volume; the patch tokens of a vision transformer are the same thing on the
patch grid, so they are read as the volume ``(D, h, w)``. What is a patch grid is decided from the model's
*structure*, once per pass (:func:`token_layout`), never from the token count alone: a BERT sequence of 16
tokens is not a 4 x 4 image.

The rule, explicit:

1. **Is the model a vision token model?** It has a *patchify* ``Conv2d`` (kernel size = stride > 1, as
   ViT's, DeiT's, Swin's and timm's ``PatchEmbed``), or a ``config`` with ``image_size`` and ``patch_size``
   (Hugging Face). The patch size p is that convolution's stride (else ``config.patch_size``); the image size
   is the sampled inputs' ``(H, W)`` (else ``config.image_size``).
2. **Candidate grids** (:attr:`TokenLayout.grids`): the patch grid ``(ceil(H/p), ceil(W/p))`` (and the floor,
   where it differs), then each grid halved (ceil and floor) up to 6 times: hierarchical models (Swin's patch
   merging) halve the grid per stage.
3. **A ``(B, T, D)`` output is a patch grid** when ``T = n + h*w`` for a candidate ``(h, w)``, trying for n the
   model's counted extra tokens first (parameters named ``cls_token``, ``dist_token`` / ``distillation_token``,
   ``reg_token`` / ``register_tokens``: the CLS, distillation and register tokens of ViT, DeiT, DINOv2 and
   timm), then 0, 1, ..., :data:`MAX_EXTRA_TOKENS`. Without a candidate grid (no image size known), ``T - n``
   must be a perfect square ``h = w``. The n extra tokens are the first ones (as in all of those models) and
   are dropped; the cubical threshold rule (default: the volume's mean) is applied to the patch volume.
4. **Otherwise a token sequence** (text, or no grid found): a *text* model (an ``nn.Embedding``, no patchify
   conv) gives ``(B, T, D)`` outputs whose D is one of its embedding widths (or ``config.hidden_size``); one
   input is read as the 2-D volume ``(D, T)`` (axis order does not change homology: this is the same complex
   as ``(T, D)``, which is how any other ``(B, X, Y)`` output is read). Padded inputs (the sample's
   ``token_mask``, from the items' ``attention_mask``): a sequence's padded positions are left out of its volume
   (:func:`masked_sequence_volumes`) and of its mean (:func:`pool_tokens`), for the outputs of the inputs' length T.

Point-cloud view: a patch grid is pooled to the **mean of its patch tokens** ``(D,)``; a text sequence to the
mean of its tokens. Not the CLS token, which ViT's classifier reads: at the embedding layer the CLS token is
the same learned vector for every input (a cloud of one point) and gathers the image only in later blocks, so a
depth curve of CLS tokens starts from nothing; the mean of the patch tokens is defined the same way at every
depth. To use the CLS token instead, pass ``output_fn=lambda out: first_tensor(out)[:, 0]`` (a ``(B, D)``
vector per input). Other 3-D outputs are flattened, as before.

``output_fn`` still overrides what tensor is read; this module then reads the tensor it returns.

================================  ============================  ===================================================
family (transformers 5.x)         watched layer output          read as (cubical view)
================================  ============================  ===================================================
ViT / DeiT (``vit.layers.N``)     ``(B, 1 + h*w, D)``           ``(D, h, w)``, CLS (and distillation) dropped
Swin (``swin.encoder.layers.N``)  tuple: ``(B, h*w, C)``, ...   ``(C, h, w)`` of the first tensor (the stage's
                                                                tokens after patch merging)
ConvNeXt, ResNet (``stages.N``)   ``(B, C, H, W)``              ``(C, H, W)``, as any conv map
BERT (``encoder.layer.N``)        ``(B, T, D)``                 ``(D, T)``: no patchify conv, so never a grid
an MLP on sequences               ``(B, T, D)``                 ``(T, D)``, as any 3-D output (same homology)
================================  ============================  ===================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_topo.functional.thresholds import sublevel_thresholds

__all__ = [
    "EXTRA_TOKEN_PARAMETERS",
    "MAX_EXTRA_TOKENS",
    "TokenLayout",
    "cubical_volumes",
    "patch_grid",
    "pool_tokens",
    "token_layout",
    "token_volumes",
]

MAX_EXTRA_TOKENS = 8
"""Most tokens before the patch tokens tried when the model's extra tokens are not counted (CLS, distillation,
registers)."""
EXTRA_TOKEN_PARAMETERS: tuple[str, ...] = (
    "cls_token",
    "dist_token",
    "distillation_token",
    "reg_token",
    "register_tokens",
)
"""Parameter names of the tokens a vision transformer puts before its patch tokens (ViT, DeiT, DINOv2, timm);
each counts as many tokens as its second-to-last axis is long."""
_HALVINGS = 6


@dataclass(frozen=True)
class TokenLayout:
    """What a model's token outputs are (see the module docstring for the rule).

    Attributes:
        kind: ``"vision"`` (patch tokens on a grid), ``"text"`` (a token sequence) or ``None`` (no token model:
            every output is read as it is).
        grids: candidate patch grids ``(h, w)``, finest first (vision; empty when the image size is unknown).
        extra_tokens: the tokens counted before the patch tokens (CLS, distillation, registers), or ``None``.
        widths: text: the token widths D of the model (embedding widths, ``config.hidden_size``).
        why: how the layout was found, in words.
        length: text with padded inputs: the inputs' length T (their padding mask's); an output ``(B, T, X)`` of
            any width X is then a token sequence (an FFN's ``4 D``, logits), its padding left out as a block's.
    """

    kind: Literal["vision", "text"] | None = None
    grids: tuple[tuple[int, int], ...] = ()
    extra_tokens: int | None = None
    widths: frozenset[int] = frozenset()
    why: str = "no patchify Conv2d, no image_size / patch_size config and no nn.Embedding: not a token model"
    length: int | None = None


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    return None


def _configs(model: nn.Module) -> Iterable[Any]:
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and not isinstance(config, (nn.Module, dict)):
            yield config


def _config_value(model: nn.Module, name: str) -> Any:
    for config in _configs(model):
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def _patchify_conv(model: nn.Module) -> nn.Conv2d | None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            pad = module.padding
            unpadded = pad == "valid" or (not isinstance(pad, str) and all(p == 0 for p in pad))
            if tuple(module.kernel_size) == tuple(module.stride) and min(module.stride) > 1 and unpadded:
                return module
    return None


def _count_extra_tokens(model: nn.Module) -> int | None:
    count, found = 0, False
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[-1] in EXTRA_TOKEN_PARAMETERS:
            found = True
            count += int(param.shape[-2]) if param.ndim >= 2 else 1
    return count if found else None


def _grids(h0: int, w0: int, floor: tuple[int, int] | None = None) -> tuple[tuple[int, int], ...]:
    level = {(h0, w0)} | ({floor} if floor is not None and min(floor) > 0 else set())
    out: list[tuple[int, int]] = sorted(level, key=lambda g: (-g[0] * g[1], g))
    for _ in range(_HALVINGS):
        level = {(f(h / 2), f(w / 2)) for h, w in level for f in (math.ceil, math.floor)}
        level = {g for g in level if min(g) > 0}
        out += [g for g in sorted(level, key=lambda g: (-g[0] * g[1], g)) if g not in out]
    return tuple(out)


def token_layout(model: nn.Module, inputs: Tensor | None = None) -> TokenLayout:
    """The :class:`TokenLayout` of ``model`` given sampled ``inputs`` (their shape only).

    Example:
        >>> vit_like = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.Linear(8, 8))
        >>> lay = token_layout(vit_like, torch.zeros(1, 3, 32, 32))
        >>> lay.kind, lay.grids[:3]
        ('vision', ((8, 8), (4, 4), (2, 2)))
        >>> token_layout(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))).kind
        'text'
        >>> token_layout(nn.Sequential(nn.Linear(4, 4))).kind is None
        True
    """
    conv = _patchify_conv(model)
    config_patch = _pair(_config_value(model, "patch_size"))
    config_image = _pair(_config_value(model, "image_size"))
    if conv is not None or (config_patch is not None and config_image is not None):
        if conv is not None:
            patch = (int(conv.stride[0]), int(conv.stride[1]))
            why = f"a patchify Conv2d (kernel = stride = {patch[0]}x{patch[1]})"
        else:
            assert config_patch is not None
            patch, why = config_patch, f"config.patch_size {config_patch[0]}x{config_patch[1]}"
        image: tuple[int, int] | None = None
        if inputs is not None and inputs.ndim == 4 and inputs.is_floating_point():
            image = (int(inputs.shape[-2]), int(inputs.shape[-1]))
            why += f", inputs of {image[0]}x{image[1]}"
        elif config_image is not None:
            image, why = config_image, why + f", config.image_size {config_image[0]}x{config_image[1]}"
        grids: tuple[tuple[int, int], ...] = ()
        if image is not None:
            ceil = (math.ceil(image[0] / patch[0]), math.ceil(image[1] / patch[1]))
            floor = (image[0] // patch[0], image[1] // patch[1])
            grids = _grids(*ceil, floor=floor if floor != ceil else None)
        return TokenLayout("vision", grids, _count_extra_tokens(model), frozenset(), why)
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    if embeddings:
        widths = {int(m.embedding_dim) for m in embeddings}
        for name in ("hidden_size", "d_model"):
            value = _config_value(model, name)
            if isinstance(value, int) and not isinstance(value, bool):
                widths.add(value)
        return TokenLayout("text", (), None, frozenset(widths), "an nn.Embedding and no patchify Conv2d")
    return TokenLayout()


def patch_grid(num_tokens: int, layout: TokenLayout) -> tuple[int, int, int] | None:
    """``(n_extra, h, w)`` when ``num_tokens`` tokens are ``n_extra`` extra tokens then an ``h x w`` patch grid
    under ``layout`` (rule 3 of the module docstring); ``None`` otherwise.

    Example:
        >>> lay = TokenLayout("vision", grids=((8, 8), (4, 4)), extra_tokens=1)
        >>> patch_grid(65, lay), patch_grid(16, lay), patch_grid(50, lay)
        ((1, 8, 8), (0, 4, 4), None)
        >>> patch_grid(16, TokenLayout("text"))  # a 16-token sentence is not a 4 x 4 image
    """
    if layout.kind != "vision":
        return None
    tries = ([layout.extra_tokens] if layout.extra_tokens is not None else []) + list(range(MAX_EXTRA_TOKENS + 1))
    seen: set[int] = set()
    for n in tries:
        if n in seen:
            continue
        seen.add(n)
        m = num_tokens - n
        if m < 1:
            continue
        if layout.grids:
            for h, w in layout.grids:
                if h * w == m:
                    return n, h, w
        else:
            r = math.isqrt(m)
            if r * r == m:
                return n, r, r
    return None


def _is_sequence(out: Tensor, layout: TokenLayout) -> bool:
    if layout.kind != "text" or out.ndim != 3:
        return False
    return int(out.shape[-1]) in layout.widths or (layout.length is not None and int(out.shape[1]) == layout.length)


def token_volumes(out: Tensor, layout: TokenLayout) -> Tensor | None:
    """A batch of token outputs ``(B, T, D)`` as cubical volumes: ``(B, D, h, w)`` for patch tokens (extra
    tokens dropped), ``(B, D, T)`` for a text sequence; ``None`` when ``out`` is not tokens under ``layout``.

    Example:
        >>> lay = TokenLayout("vision", grids=((2, 2),), extra_tokens=1)
        >>> x = torch.arange(2 * 5 * 3.0).reshape(2, 5, 3)  # CLS + 2x2 patches, width 3
        >>> v = token_volumes(x, lay)
        >>> tuple(v.shape), bool((v[0, :, 0, 1] == x[0, 2]).all())
        ((2, 3, 2, 2), True)
    """
    if out.ndim != 3:
        return None
    grid = patch_grid(int(out.shape[1]), layout)
    if grid is not None:
        n, h, w = grid
        return out[:, n:].transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)
    if _is_sequence(out, layout):
        return out.transpose(1, 2)
    return None


def embedding_dtype(out: Tensor) -> torch.dtype:
    """The dtype of the point-cloud view's embeddings of ``out``: float64 for float64 and integer outputs (a float64
    model's cloud whose spread is small beside its offset, or beyond float32's range; integers exact to 2**53),
    float32 for the others and on devices without float64 (MPS)."""
    wide = out.dtype == torch.float64 or not out.is_floating_point()
    return torch.float64 if wide and out.device.type != "mps" else torch.float32


def pool_tokens(out: Tensor, layout: TokenLayout, mask: Tensor | None = None) -> Tensor | None:
    """The point-cloud view's embedding of token outputs: ``(B, D)``, the mean of the patch tokens (extra
    tokens dropped) or of a text sequence's tokens (in :func:`embedding_dtype`); ``None`` when ``out`` is not
    tokens under ``layout``. ``mask`` ``(B, T)`` (``True``: a real token; see :func:`sequence_mask`) leaves a text
    sequence's padded positions out of its mean.

    Example:
        >>> lay = TokenLayout("vision", grids=((2, 2),), extra_tokens=1)
        >>> x = torch.zeros(1, 5, 2); x[0, 0] = 100.0; x[0, 1:] = 1.0  # a CLS token of 100, patches of 1
        >>> pool_tokens(x, lay).tolist()
        [[1.0, 1.0]]
    """
    if out.ndim != 3:
        return None
    grid = patch_grid(int(out.shape[1]), layout)
    if grid is not None:
        return out[:, grid[0] :].to(embedding_dtype(out)).mean(dim=1)
    if _is_sequence(out, layout):
        wide = out.to(embedding_dtype(out))
        mask = sequence_mask(out, layout, mask)
        if mask is None:
            return wide.mean(dim=1)
        real = mask.to(wide.device).unsqueeze(2)
        total = torch.where(real, wide, torch.zeros((), dtype=wide.dtype, device=wide.device)).sum(dim=1)
        return total / real.sum(dim=1).to(wide.dtype)
    return None


def sequence_mask(out: Tensor, layout: TokenLayout, mask: Tensor | None) -> Tensor | None:
    """``mask`` ``(B, T)`` bool (``True``: a real token, the sample's padding mask for this batch) where it applies
    to ``out``: a text sequence ``(B, T, D)`` of the inputs' length with padding; ``None`` otherwise (and for an
    input that is all padding, which keeps every position)."""
    if mask is None or not _is_sequence(out, layout) or tuple(mask.shape) != tuple(out.shape[:2]):
        return None
    mask = mask.to(out.device) | ~mask.any(dim=1, keepdim=True)
    return None if bool(mask.all()) else mask


def masked_sequence_volumes(volumes: Tensor, mask: Tensor, rule: Any) -> tuple[Tensor, Tensor | float]:
    """A text sequence's volumes ``(B, D, T)`` with the padded positions (``mask`` ``(B, T)`` False) left out, and
    their thresholds under ``rule``: each volume's threshold is that of its real positions alone, and its padded
    positions hold its real positions' maximum. The sublevel sets below that maximum are then those of the real
    positions alone, and at it the whole box, as the unpadded volume's: Betti numbers at the threshold and
    persistence diagrams are those of the volume cut to its real tokens (for right or left padding).

    Example:
        >>> v = torch.tensor([[[0.0, 2.0, 1.0, 9.0, -5.0]]])  # (B, D, T) = (1, 1, 5), two padded positions
        >>> filled, t = masked_sequence_volumes(v, torch.tensor([[True, True, True, False, False]]), "mean")
        >>> filled.tolist(), t.tolist()
        ([[[0.0, 2.0, 1.0, 2.0, 2.0]]], [1.0])
    """
    real = mask.unsqueeze(1).expand_as(volumes)
    parts = [volumes[i][real[i]].reshape(volumes.shape[1], -1) for i in range(volumes.shape[0])]
    thresholds: Tensor | float = rule
    if isinstance(rule, str) or callable(rule):  # a statistic of each volume's real positions
        each = [sublevel_thresholds(part.unsqueeze(0), rule) for part in parts]
        thresholds = torch.cat([torch.as_tensor(t, dtype=torch.float64).reshape(1).to(volumes.device) for t in each])
    top = torch.stack([part.max() for part in parts]).reshape(-1, 1, 1)
    return torch.where(real, volumes, top), thresholds


def cubical_volumes(out: Tensor, layout: TokenLayout) -> Tensor:
    """A batch of layer outputs as the cubical view's volumes: tokens by :func:`token_volumes`, a batch of
    scalars ``(B,)`` as ``(B, 1)``, anything else (conv maps ``(B, C, H, W)``, vectors ``(B, D)``) as it is.

    Example:
        >>> vit = TokenLayout("vision", grids=((8, 8),), extra_tokens=1)
        >>> [tuple(cubical_volumes(torch.zeros(s), vit).shape) for s in ((2, 65, 32), (2, 16, 8, 8), (2, 10))]
        [(2, 32, 8, 8), (2, 16, 8, 8), (2, 10)]
    """
    if out.ndim == 1:
        return out.unsqueeze(1)
    tokens = token_volumes(out, layout) if out.ndim == 3 else None
    return out if tokens is None else tokens
