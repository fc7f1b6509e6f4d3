"""Where activations are captured: which layers (``layers.py``), which inputs (``sampling.py``), forward hooks
that live for one pass (``hooks.py``) and the reduction of each layer's output inside its hook (``reduce.py``).

No Lightning import here; errors are this package's own types (``errors.py``).
"""

from lightning_topo.capture.errors import CaptureError, SampleError, UnknownLayerError
from lightning_topo.capture.hooks import (
    ActivationCapture,
    LayerTrace,
    execution_order,
    first_tensor,
    model_device,
    model_dtype,
    run_on_sample,
    trace_layers,
)
from lightning_topo.capture.layers import CALL_SEPARATOR, resolve_layers, split_call
from lightning_topo.capture.reduce import LayerValues, capture_layers, pooled_embedding
from lightning_topo.capture.sampling import FixedSample, build_sample, class_labels, shard

__all__ = [
    "CALL_SEPARATOR",
    "ActivationCapture",
    "CaptureError",
    "FixedSample",
    "LayerTrace",
    "LayerValues",
    "SampleError",
    "UnknownLayerError",
    "build_sample",
    "capture_layers",
    "class_labels",
    "execution_order",
    "first_tensor",
    "model_device",
    "model_dtype",
    "pooled_embedding",
    "resolve_layers",
    "run_on_sample",
    "shard",
    "split_call",
    "trace_layers",
]
