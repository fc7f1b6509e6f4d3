"""Which layers to watch: the automatic choice, names, glob patterns or a predicate.

Names are the ones users see in their own model: the ``module.`` prefix that DDP adds and the
``_orig_mod.`` of ``torch.compile`` (wherever a compiled submodule sits) are stripped (and accepted).
``name#k`` is the k-th call of a module that runs more than once per forward pass (see
:mod:`lightning_topo.capture.hooks`).

Glob patterns (``*``, ``?``, ``[...]``) match within one part of a dotted name: ``*`` does not cross a
dot (``encoder.layer.*`` matches ``encoder.layer.3`` but not ``encoder.layer.3.output.dropout``); ``**``
crosses dots (``encoder.**.dense``).

``layers="auto"`` follows the seed paper's naming (Suresh et al.) where it applies and otherwise looks for the
network's depth in its *structure* (module types and nesting, never names), first rule that applies:

============================  ===================================================================
model family (by structure)   watched layers
============================  ===================================================================
ResNet (torchvision-style)    ``conv1``, ``bn1``, ``relu``, then every residual block
                              (``layer1.0`` …): 11 layers for ResNet18, 19 for ResNet50
VGG (``features`` Sequential) every activation module in ``features``
DenseNet                      every ``denseblockN`` and ``transitionN`` in ``features``
MLP (Linear + activations)    every activation module
repeated blocks               the stem, then every block of the outermost *block list*: a ``ModuleList`` /
                              ``Sequential`` of two or more blocks of one class (composite modules with
                              parameters). Transformers 5.x: ViT ``vit.embeddings``, ``vit.layers.N``; BERT
                              ``bert.embeddings``, ``bert.encoder.layer.N``; Swin ``swin.embeddings``,
                              ``swin.encoder.layers.N`` (stages; the blocks inside a stage are not watched);
                              ConvNeXt ``convnext.embeddings``, ``convnext.encoder.stages.N``; ResNet
                              ``resnet.embedder``, ``resnet.encoder.stages.N``; timm's ``blocks`` /
                              ``stages`` with ``patch_embed`` / ``stem``. The *stem* is what runs before the
                              block list: walking up from the list, the first ancestor level with earlier
                              siblings gives them (those with parameters, or activations). In a
                              ``Sequential`` parent, the composite modules after the last list are watched
                              too (EfficientNet ``features``: a one-block last stage, the last conv). A
                              Sequential of repeated blocks that hold block lists of their own is the list
                              (MobileNetV3 ``features``: its ``InvertedResidual``, not their conv-norm-acts)
anything else                 every top-level child except pass-through modules (``Flatten``,
                              ``Unflatten``, ``Identity``, dropout), which repeat the layer before; with
                              fewer than 3 of them, the children of each ``Sequential`` child instead of
                              it (a ``backbone`` + ``head`` of Sequentials, a network and its EMA copy)
============================  ===================================================================

A model (or LightningModule) that only wraps one network, e.g. ``self.net``, is looked into: the
rules apply to that network and names keep the prefix (``net.1``). More than ``max_layers`` layers
are thinned to ``max_layers`` evenly spaced ones, always keeping the first and the last. When the choice
has fewer than 3 layers, :func:`auto_layer_note` says why and how to choose layers (a decay over depth
from one or two points says little).

How each watched layer's output is read (conv maps, token sequences of vision transformers and of text
models) is :mod:`lightning_topo.capture.tokens`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence

from torch import nn

from lightning_topo.capture.errors import UnknownLayerError

__all__ = [
    "ACTIVATION_TYPES",
    "CALL_SEPARATOR",
    "MIN_AUTO_LAYERS",
    "PASS_THROUGH_TYPES",
    "auto_layer_note",
    "get_submodule_by_user_name",
    "named_user_modules",
    "resolve_layers",
    "split_call",
    "unwrap_model",
    "user_name",
]

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
)
_MLP_LEAVES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Flatten,
    nn.Dropout,
    nn.BatchNorm1d,
    nn.LayerNorm,
    nn.Identity,
    *ACTIVATION_TYPES,
)
# Modules that only reshape or pass their input on (in eval mode): watching one repeats the previous layer's
# numbers, so the automatic choice skips them (an explicit name still watches them).
PASS_THROUGH_TYPES: tuple[type[nn.Module], ...] = (
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
MIN_AUTO_LAYERS = 3
"""Fewer watched layers than this and :func:`auto_layer_note` explains the choice: the decay over depth is a
cubic fit over the layers, which one or two points do not constrain."""


CALL_SEPARATOR = "#"
"""``name#k`` names the k-th call (k >= 2) of a module that runs more than once per forward pass."""


def split_call(name: str) -> tuple[str, int]:
    """``("pool", 2)`` for ``"pool#2"``; ``(name, 1)`` for a plain name (its first call).

    Example:
        >>> split_call("pool#2"), split_call("net.0")
        (('pool', 2), ('net.0', 1))
    """
    base, sep, call = name.rpartition(CALL_SEPARATOR)
    if sep and base and call.isdigit() and int(call) >= 1:
        return base, int(call)
    return name, 1


def user_name(name: str) -> str:
    """``name`` without the ``module.`` (DDP) prefix and the ``_orig_mod`` parts of ``torch.compile`` wrappers.

    Example:
        >>> user_name("module.net._orig_mod.0"), user_name("_orig_mod")
        ('net.0', '')
    """
    parts = name.split(".") if name else []
    while parts and parts[0] in ("module", "_orig_mod"):
        parts.pop(0)
    return ".".join(p for p in parts if p != "_orig_mod")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's model inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel) or (
            type(model).__name__ in ("DistributedDataParallel", "DataParallel")
        ):
            model = model.module
        else:
            return model


def named_user_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``model.named_modules()`` with user names, skipping the root and wrapper modules."""
    seen: set[str] = set()
    for name, module in model.named_modules():
        clean = user_name(name)
        if clean and clean not in seen:
            seen.add(clean)
            yield clean, module


def get_submodule_by_user_name(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` in the user's model (wrapper prefixes optional)."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        pass
    wanted = user_name(split_call(name)[0])
    for clean, module in named_user_modules(model):
        if clean == wanted:
            return module
    raise UnknownLayerError(_unknown_message(model, name))


def _unknown_message(model: nn.Module, name: str) -> str:
    names = [n for n, _ in named_user_modules(model)]
    wanted = user_name(split_call(name)[0])
    # A name given relative to a wrapped network ('0' for 'net.0') first, then spelling neighbours.
    nested = [n for n in names if n.endswith(f".{wanted}")]
    close = nested[:5] + [n for n in difflib.get_close_matches(wanted, names, n=5, cutoff=0.5) if n not in nested]
    hint = f" Close matches: {close[:5]}." if close else ""
    return (
        f"Layer {name!r} does not match any module of {type(unwrap_model(model)).__name__}.{hint} "
        "List the valid names with `[n for n, _ in model.named_modules()]` (glob patterns such as "
        "'layer*.0' are accepted; `*` stays within one dotted part, `**` crosses dots)."
    )


def _params_children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, c) for n, c in module.named_children() if any(True for _ in c.parameters())]


def _network_root(model: nn.Module) -> tuple[str, nn.Module]:
    """Descend through modules that only wrap one parametrised child (e.g. a LightningModule's ``net``)."""
    prefix, root = "", unwrap_model(model)
    while True:
        children = _params_children(root)
        # A Sequential is the network itself; a single parametrised leaf (a Conv2d) is a layer, not a wrapper.
        if (
            len(children) == 1
            and not isinstance(root, (nn.Sequential, nn.ModuleList))
            and any(True for _ in children[0][1].children())
            and not any(True for _ in root.parameters(recurse=False))
        ):
            name, child = children[0]
            prefix, root = f"{prefix}{name}.", child
        else:
            return prefix, root


def _is_resnet(root: nn.Module) -> bool:
    names = dict(root.named_children())
    return all(k in names for k in ("conv1", "bn1", "relu", "layer1")) and isinstance(names["layer1"], nn.Sequential)


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _is_block_list(module: nn.Module) -> bool:
    """A ``ModuleList`` / ``Sequential`` of two or more blocks of one class, each a composite module with
    parameters (a list of bare ``Linear`` heads is not a list of blocks)."""
    if not isinstance(module, (nn.ModuleList, nn.Sequential)):
        return False
    kids = list(module.children())
    return (
        len(kids) >= 2
        and len({type(k) for k in kids}) == 1
        and all(any(True for _ in k.children()) and _has_params(k) for k in kids)
    )


def _holds_repeated_blocks(module: nn.Module) -> bool:
    """A ``ModuleList`` / ``Sequential`` of three or more composite modules with parameters, among them two or more
    blocks of one class with their own ``forward`` (not Sequentials): torchvision's MobileNetV2 / V3 ``features``
    (a stem conv, ``InvertedResidual`` blocks, a last conv; a V3 block's ``block`` is a Sequential of conv-norm-act
    modules, itself a list of blocks of one class). Its children are the blocks to watch, not the layers inside
    one block."""
    if not isinstance(module, (nn.ModuleList, nn.Sequential)):
        return False
    kids = [k for k in module.children() if not isinstance(k, PASS_THROUGH_TYPES)]
    if len(kids) < 3 or not all(any(True for _ in k.children()) and _has_params(k) for k in kids):
        return False
    counts: dict[type, int] = {}
    for kid in kids:
        counts[type(kid)] = counts.get(type(kid), 0) + 1
    repeated = [kid for kid in kids if counts[type(kid)] >= 2 and not isinstance(kid, (nn.ModuleList, nn.Sequential))]
    return bool(repeated)


def _block_lists(root: nn.Module) -> list[str]:
    """Names (relative to ``root``; ``""`` for ``root`` itself) of the outermost block lists, in definition
    order. A block list inside another (Swin's blocks inside its stages), or inside one of several repeated blocks
    (:func:`_holds_repeated_blocks`), is not outermost."""
    found: list[str] = []
    for name, module in root.named_modules():
        if any(name == f or f == "" or name.startswith(f + ".") for f in found):
            continue
        if _is_block_list(module) or _holds_repeated_blocks(module):
            found.append(name)
    return found


def _tail(root: nn.Module, block_list: str) -> list[str]:
    """What runs after the last block list inside the same Sequential (EfficientNet's ``features``: a last stage of
    one block, the last conv): its later siblings that are composite modules with parameters. Only in a
    ``Sequential`` / ``ModuleList`` parent, whose children all run in order (a model's norm and head after its
    blocks are leaves, or outside the parent)."""
    if not block_list:
        return []
    parent_name, _, last = block_list.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if not isinstance(parent, (nn.Sequential, nn.ModuleList)):
        return []
    names = [n for n, _ in parent.named_children()]
    later = names[names.index(last) + 1 :]
    children = dict(parent.named_children())
    return [
        f"{parent_name}.{n}" if parent_name else n
        for n in later
        if any(True for _ in children[n].children()) and _has_params(children[n])
    ]


def _stem(root: nn.Module, block_list: str) -> list[str]:
    """What runs before ``block_list``: walking up from it, the earlier siblings at the first level that has
    any (with parameters, or activations; pass-through modules and bare pools are left out)."""
    if not block_list:
        return []
    parts = block_list.split(".")
    for level in range(len(parts) - 1, -1, -1):
        parent_name = ".".join(parts[:level])
        parent = root.get_submodule(parent_name) if parent_name else root
        before: list[str] = []
        for child_name, child in parent.named_children():
            if child_name == parts[level]:
                break
            if isinstance(child, PASS_THROUGH_TYPES):
                continue
            if _has_params(child) or isinstance(child, ACTIVATION_TYPES):
                before.append(f"{parent_name}.{child_name}" if parent_name else child_name)
        if before:
            return before
    return []


def _auto_choice(model: nn.Module) -> tuple[list[str], str]:
    """The automatic choice (before thinning) and the rule that made it, in words."""
    prefix, root = _network_root(model)
    kind = type(root).__name__
    children = dict(root.named_children())
    if _is_resnet(root):
        names = ["conv1", "bn1", "relu"]
        i = 1
        while isinstance(children.get(f"layer{i}"), nn.Sequential):
            names += [f"layer{i}.{j}" for j, _ in children[f"layer{i}"].named_children()]
            i += 1
        return [prefix + n for n in names], f"{kind} has the torchvision ResNet layout (stem, then every block)"
    features = children.get("features")
    if isinstance(features, nn.Sequential):
        feature_children = list(features.named_children())
        dense = [n for n, _ in feature_children if n.startswith(("denseblock", "transition"))]
        if dense:
            return [f"{prefix}features.{n}" for n in dense], f"{kind} has the DenseNet layout"
        acts = [n for n, c in feature_children if isinstance(c, ACTIVATION_TYPES)]
        if acts:
            return [f"{prefix}features.{n}" for n in acts], f"{kind} has the VGG layout (activations in `features`)"
    leaves = [(n, m) for n, m in root.named_modules() if n and not any(True for _ in m.children())]
    if leaves and all(isinstance(m, _MLP_LEAVES) for _, m in leaves):
        acts = [n for n, m in leaves if isinstance(m, ACTIVATION_TYPES)]
        if acts:
            return [prefix + n for n in acts], f"{kind} is an MLP (every activation module)"
    lists = _block_lists(root)
    if lists:
        names = _stem(root, lists[0])
        for block_list in lists:
            module = root.get_submodule(block_list) if block_list else root
            names += [
                f"{block_list}.{n}" if block_list else n
                for n, c in module.named_children()
                if not isinstance(c, PASS_THROUGH_TYPES)
            ]
        tail = _tail(root, lists[-1])
        names += tail
        where = ", ".join(repr(b or kind) for b in lists)
        after = f" and the modules after them ({', '.join(tail)})" if tail else ""
        return [prefix + n for n in names], f"{kind}'s repeated blocks ({where}), the stem before them{after}"
    names = [prefix + n for n, c in children.items() if not isinstance(c, PASS_THROUGH_TYPES)]
    why = (
        f"{kind} has no recognised family layout and no list of repeated blocks (a ModuleList / Sequential of "
        "two or more blocks of one class), so its top-level children are watched"
    )
    if len(names) < MIN_AUTO_LAYERS:
        # Too few to fit a decay: a `backbone` + `head` of plain Sequentials (or a network and its EMA copy) is
        # watched layer by layer inside them, as a Sequential network itself is.
        expanded: list[str] = []
        opened: list[str] = []
        for n, c in children.items():
            inner = [k for k, m in c.named_children() if not isinstance(m, PASS_THROUGH_TYPES)]
            if isinstance(c, nn.Sequential) and len(inner) >= 2:
                expanded += [f"{prefix}{n}.{k}" for k in inner]
                opened.append(n)
            elif not isinstance(c, PASS_THROUGH_TYPES):
                expanded.append(prefix + n)
        if opened:
            why = (
                f"{kind} has no recognised family layout and no list of repeated blocks, and fewer than "
                f"{MIN_AUTO_LAYERS} top-level children, so the layers of its Sequential children {opened} are watched "
                "one by one, with its other top-level children"
            )
            return expanded, why
    return names, why


def _auto_layers(model: nn.Module) -> list[str]:
    return _auto_choice(model)[0]


def auto_layer_note(model: nn.Module, names: Sequence[str]) -> str | None:
    """A one-time note for a watched-layer list shorter than :data:`MIN_AUTO_LAYERS`: why, and how to choose.

    ``names`` are the layers the run watches (after any per-call split by the capture). ``None`` when there are
    enough layers. For ``layers="auto"`` the note names the rule that chose them (see the module docstring).

    Example:
        >>> class Two(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.body, self.head = nn.Conv2d(1, 4, 3), nn.Linear(4, 2)
        >>> note = auto_layer_note(Two(), resolve_layers(Two()))
        >>> note.startswith("2 watched layers (['body', 'head'])")
        True
        >>> auto_layer_note(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.ReLU()),
        ...                 ["1", "3", "4"]) is None
        True
    """
    names = list(names)
    if len(names) >= MIN_AUTO_LAYERS:
        return None
    auto, why = _auto_choice(model)
    chose = f'layers="auto" chose them because {why}' if [n for n in names if "#" not in n] == auto else ""
    return (
        f"{len(names)} watched layer{'s' if len(names) != 1 else ''} ({names}): the decay over depth (theta, "
        f"decay_rate) is fitted over the watched layers, and {len(names)} point{'s' if len(names) != 1 else ''} "
        f"say{'s' if len(names) == 1 else ''} little about it"
        + (f"; {chose}" if chose else "")
        + ". Choose the layers to watch with "
        "`layers=[...]`: names from `[n for n, _ in model.named_modules()]` or glob patterns such as "
        "'encoder.layer.?', or a predicate `(name, module) -> bool` such as "
        "`lambda name, m: isinstance(m, MyBlock)`."
    )


def _thin(names: list[str], max_layers: int) -> list[str]:
    if len(names) <= max_layers:
        return names
    if max_layers == 1:
        return [names[-1]]
    step = (len(names) - 1) / (max_layers - 1)
    return [names[round(i * step)] for i in range(max_layers)]


def thinned_note(model: nn.Module, layers: object, max_layers: int) -> str | None:
    """What ``layers="auto"`` left out when it thinned the automatic choice to ``max_layers`` (``None``: nothing).

    Example:
        >>> deep = nn.Sequential(*[nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(10)])
        >>> thinned_note(deep, "auto", 4)
        'the automatic choice of 10 layers thinned to 4, evenly spaced (max_layers=4: raise it to watch more)'
    """
    if not (isinstance(layers, str) and layers == "auto"):
        return None
    count = len(dict.fromkeys(user_name(n) for n in _auto_layers(model)))
    if count <= max_layers:
        return None
    return (
        f"the automatic choice of {count} layers thinned to {max_layers}, evenly spaced (max_layers={max_layers}: "
        "raise it to watch more)"
    )


def resolve_layers(
    model: nn.Module,
    layers: str | Sequence[str] | Callable[[str, nn.Module], bool] = "auto",
    *,
    max_layers: int = 32,
) -> list[str]:
    """The names of the layers to watch, in definition (depth) order.

    Args:
        model: the model (a LightningModule, a DDP- or torch.compile-wrapped model are fine).
        layers: ``"auto"`` (see the module docstring), a list of names or glob patterns, or a predicate
            ``(name, module) -> bool`` over named modules.
        max_layers: cap of the automatic choice (explicit names and patterns are never thinned).

    Raises:
        UnknownLayerError: a name or pattern that matches no module (with close matches).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> resolve_layers(net), resolve_layers(net, ["0", "4"]), resolve_layers(net, ["[24]"])
        (['1', '3'], ['0', '4'], ['2', '4'])
    """
    if isinstance(layers, str) and layers == "auto":
        return _thin(list(dict.fromkeys(user_name(n) for n in _auto_layers(model))), max_layers)
    named = list(named_user_modules(model))
    order = {n: i for i, (n, _) in enumerate(named)}
    if callable(layers):
        return [n for n, m in named if layers(n, m)]
    if isinstance(layers, str):
        layers = [layers]
    chosen: list[str] = []
    unknown: list[str] = []
    for spec in layers:
        if not isinstance(spec, str):
            raise UnknownLayerError(f"`layers` entries must be strings, got {spec!r}.")
        if any(ch in spec for ch in "*?["):
            pattern = _glob_regex(user_name(spec))
            matches = [n for n, _ in named if pattern.fullmatch(n)]
        else:
            base, call = split_call(spec)
            base = user_name(base)
            matches = [base if call == 1 else f"{base}{CALL_SEPARATOR}{call}"] if base in order else []
        if not matches:
            unknown.append(spec)
        chosen += [m for m in matches if m not in chosen]
    if len(unknown) == 1:
        raise UnknownLayerError(_unknown_message(model, unknown[0]))
    if unknown:  # every bad name at once, not one per attempt
        raise UnknownLayerError(
            f"{len(unknown)} `layers` entries match no module: {unknown}.\n"
            + "\n".join(f"- {_unknown_message(model, spec)}" for spec in unknown)
        )
    # Patterns select in definition order; explicit lists keep the user's order here: the callback and analyse put
    # the watched layers in execution order (capture.execution_order) before the decay over depth.
    if any(any(ch in s for ch in "*?[") for s in layers):
        chosen.sort(key=lambda n: order[split_call(n)[0]])
    return chosen


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over dotted names: ``*`` and ``?`` stay within one part, ``**`` crosses dots, ``[...]`` a set."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^.]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            body = body.replace("\\", "\\\\")
            out.append("[^." + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
