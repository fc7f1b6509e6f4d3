"""Where activations are captured: which layers (``layers.py``), which inputs (``sampling.py``), forward hooks
that live for one pass (``hooks.py``), the reduction of each layer's output inside its hook (``reduce.py``) and
how token outputs of transformers are read (``tokens.py``).

No Lightning import here; errors are this package's own types (``errors.py``).
"""

from lightning_topo.capture.errors import CaptureError, ForwardError, SampleError, UnknownLayerError
from lightning_topo.capture.hooks import (
    ActivationCapture,
    LayerTrace,
    execution_order,
    first_tensor,
    model_device,
    model_dtype,
    needs_autograd,
    run_on_sample,
    trace_layers,
    watched_layers,
)
from lightning_topo.capture.layers import CALL_SEPARATOR, auto_layer_note, resolve_layers, split_call, thinned_note
from lightning_topo.capture.reduce import LayerValues, PendingCapture, capture_layers, pooled_embedding, start_capture
from lightning_topo.capture.sampling import FixedSample, build_sample, class_labels, shard
from lightning_topo.capture.tokens import (
    TokenLayout,
    cubical_volumes,
    patch_grid,
    pool_tokens,
    token_layout,
    token_volumes,
)

__all__ = [
    "CALL_SEPARATOR",
    "ActivationCapture",
    "CaptureError",
    "FixedSample",
    "ForwardError",
    "LayerTrace",
    "LayerValues",
    "PendingCapture",
    "SampleError",
    "TokenLayout",
    "UnknownLayerError",
    "auto_layer_note",
    "build_sample",
    "capture_layers",
    "class_labels",
    "cubical_volumes",
    "execution_order",
    "first_tensor",
    "model_device",
    "model_dtype",
    "needs_autograd",
    "patch_grid",
    "pool_tokens",
    "pooled_embedding",
    "resolve_layers",
    "run_on_sample",
    "shard",
    "split_call",
    "start_capture",
    "thinned_note",
    "token_layout",
    "token_volumes",
    "trace_layers",
    "watched_layers",
]
