"""A learner's exported model, run by the judge: only listed aten operations, on the judge's own images.

The worker sends a trained model as plain data (``grader.worker.exporting``): the nodes of its
``torch.export`` graph (an operation's name and its arguments) and its tensors. ``Graph`` checks
every node against ``OPERATIONS`` (the float operations a CNN is made of; nothing that compares,
indexes, sorts or hashes its input, so a model cannot look its answers up), then runs it here.
Accuracy and parameter counts that the judge reports come from this, never from the worker.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import Tensor

# aten operation -> allowed overloads. A CNN built from torch.nn layers exports to these.
OPERATIONS = {
    "conv1d": {"default"}, "conv2d": {"default"}, "convolution": {"default"},
    "linear": {"default"}, "addmm": {"default"}, "mm": {"default"}, "matmul": {"default"}, "t": {"default"},
    "bmm": {"default"},
    "relu": {"default"}, "relu_": {"default"}, "leaky_relu": {"default"}, "leaky_relu_": {"default"},
    "gelu": {"default"}, "silu": {"default"}, "silu_": {"default"}, "elu": {"default"}, "elu_": {"default"},
    "selu": {"default"}, "tanh": {"default"}, "sigmoid": {"default"}, "hardtanh": {"default"},
    "hardtanh_": {"default"}, "hardswish": {"default"}, "hardsigmoid": {"default"}, "mish": {"default"},
    "softplus": {"default"}, "prelu": {"default"}, "_prelu_kernel": {"default"},
    "max_pool2d": {"default"}, "max_pool2d_with_indices": {"default"}, "avg_pool2d": {"default"},
    "adaptive_avg_pool2d": {"default"}, "adaptive_max_pool2d": {"default"}, "_adaptive_avg_pool2d": {"default"},
    "mean": {"dim", "default"}, "sum": {"dim_IntList", "default"}, "amax": {"default"},
    "batch_norm": {"default"}, "_native_batch_norm_legit_no_training": {"default"},
    "layer_norm": {"default"}, "group_norm": {"default"}, "instance_norm": {"default"},
    "dropout": {"default"}, "feature_dropout": {"default"}, "alpha_dropout": {"default"},
    "dropout_": {"default"}, "feature_dropout_": {"default"},
    "flatten": {"using_ints"}, "view": {"default"}, "reshape": {"default"}, "_unsafe_view": {"default"},
    "permute": {"default"}, "transpose": {"int"}, "squeeze": {"dim", "dims", "default"},
    "unsqueeze": {"default"}, "contiguous": {"default"}, "clone": {"default"}, "alias": {"default"},
    "detach": {"default"}, "expand": {"default"}, "cat": {"default"}, "pad": {"default"},
    "constant_pad_nd": {"default"},
    "add": {"Tensor", "Scalar"}, "add_": {"Tensor", "Scalar"}, "sub": {"Tensor", "Scalar"},
    "mul": {"Tensor", "Scalar"}, "mul_": {"Tensor", "Scalar"}, "div": {"Tensor", "Scalar"},
    "div_": {"Tensor", "Scalar"}, "rsub": {"Scalar"}, "neg": {"default"}, "pow": {"Tensor_Scalar"},
    "sqrt": {"default"}, "rsqrt": {"default"}, "exp": {"default"}, "log": {"default"}, "abs": {"default"},
    "clamp": {"default"}, "clamp_min": {"default"}, "maximum": {"default"}, "minimum": {"default"},
    "softmax": {"int"}, "log_softmax": {"int"}, "_softmax": {"default"}, "_log_softmax": {"default"},
    "square": {"default"}, "reciprocal": {"default"},
}
# The running statistics of these operations are buffers, not weights (argument positions).
RUNNING_STATS = {"batch_norm": (3, 4), "_native_batch_norm_legit_no_training": (3, 4), "instance_norm": (3, 4)}
MAX_NODES, MAX_PARAMETERS = 2000, 50_000_000


class GraphError(Exception):
    """The exported model cannot be run by the judge; one sentence for the learner."""


class Graph:
    """A checked graph: nodes, the tensors feeding them, and which input is the image batch."""

    def __init__(self, data, what: str = "your model"):
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not isinstance(data.get("inputs"), list):
            raise GraphError(f"{what} did not come back from the worker as a graph")
        self.what = what
        self.batch = data.get("batch")
        if type(self.batch) is not int or self.batch < 1:
            raise GraphError(f"{what}: the graph has no batch size")
        tensors = data.get("tensors")
        if not isinstance(tensors, dict):
            raise GraphError(f"{what}: the graph has no tensors")
        self.values: dict[str, Tensor] = {}
        self.kinds: dict[str, str] = {}
        self.image = None
        for spec in data["inputs"]:
            if not isinstance(spec, dict) or type(spec.get("name")) is not str:
                raise GraphError(f"{what}: a malformed input")
            name, kind = spec["name"], spec.get("kind")
            if kind == "user_input":
                if self.image is not None:
                    raise GraphError(f"{what} takes more than one input")
                self.image = name
                continue
            value = tensors.get(name)
            if kind not in ("parameter", "buffer", "constant_tensor") or type(value) is not torch.Tensor:
                raise GraphError(f"{what}: input {name!r} is not a tensor")
            self.values[name], self.kinds[name] = value.detach(), kind
        if self.image is None:
            raise GraphError(f"{what} takes no image")
        self.nodes = data["nodes"]
        if len(self.nodes) > MAX_NODES:
            raise GraphError(f"{what} has more than {MAX_NODES} operations")
        self._check()

    def _check(self) -> None:
        known = set(self.values) | {self.image}
        outputs = 0
        for node in self.nodes:
            if not isinstance(node, dict) or type(node.get("name")) is not str:
                raise GraphError(f"{self.what}: a malformed operation")
            if node.get("op") == "output":
                outputs += 1
                self._refs(node.get("args"), known)
                continue
            if node.get("op") != "call_function":
                raise GraphError(f"{self.what}: an operation of kind {node.get('op')!r}")
            target = node.get("target")
            if target != "getitem":
                parts = str(target).split(".")
                if len(parts) != 3 or parts[0] != "aten" or parts[2] not in OPERATIONS.get(parts[1], ()):
                    raise GraphError(f"{self.what} uses the operation {target}, which the grader does not run "
                                     "(it runs the layers of torch.nn that a CNN is made of: convolutions, Linear, "
                                     "pooling, normalisation, activations, dropout, reshaping)")
            self._refs(node.get("args"), known)
            self._refs(node.get("kwargs"), known)
            known.add(node["name"])
        if outputs != 1:
            raise GraphError(f"{self.what}: the graph must have one output")

    def _refs(self, value, known: set) -> None:
        if isinstance(value, dict):
            if "node" in value:
                if value["node"] not in known:
                    raise GraphError(f"{self.what}: an operation uses a value not computed before it")
                return
            if set(value) & {"unsupported"}:
                raise GraphError(f"{self.what}: an operation takes an argument the grader does not run "
                                 f"({value['unsupported']})")
            for v in value.values():
                self._refs(v, known)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._refs(v, known)

    # -- what the judge measures --------------------------------------------------------------------

    def weights(self) -> int:
        """Numbers the model learns or carries: every floating-point input but batch norm's running statistics."""
        stats = set()
        for node in self.nodes:
            if node.get("op") != "call_function":
                continue
            positions = RUNNING_STATS.get(str(node.get("target")).split(".")[1] if "." in str(node.get("target")) else "")
            for i in positions or ():
                args = node.get("args") or []
                if i < len(args) and isinstance(args[i], dict) and "node" in args[i]:
                    stats.add(args[i]["node"])
        return sum(v.numel() for name, v in self.values.items() if v.is_floating_point() and name not in stats)

    def size_kb(self) -> float:
        """The tensors' size in memory, in KB (what a deployment ships, without the file's overhead)."""
        return sum(v.numel() * v.element_size() for v in self.values.values()) / 1024

    def __call__(self, x: Tensor) -> Tensor:
        """The logits for ``x`` (N, 1, 28, 28), computed here in batches of the exported size."""
        if self.weights() > MAX_PARAMETERS:
            raise GraphError(f"{self.what} has more than {MAX_PARAMETERS:,} weights")
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch):
                chunk = x[start:start + self.batch]
                n = len(chunk)
                if n < self.batch:  # eval mode: each image's logits do not depend on the others in its batch
                    chunk = torch.cat([chunk, chunk.new_zeros(self.batch - n, *chunk.shape[1:])])
                out = self._run(chunk)
                outs.append(out[:n])
        return torch.cat(outs) if outs else torch.empty(0, 10)

    def forward(self, x: Tensor) -> Tensor:
        """The logits of one batch of exactly the exported size, as it comes (for timing: no padding, no checks
        beyond the run's own)."""
        with torch.no_grad():
            return self._run(x)

    def _run(self, x: Tensor) -> Tensor:
        env: dict[str, object] = {**self.values, self.image: x}
        for node in self.nodes:
            if node["op"] == "output":
                (result,) = self._value(node["args"], env) if len(node["args"]) == 1 else (None,)
                if type(result) is not torch.Tensor:
                    raise GraphError(f"{self.what} does not return one tensor of logits")
                return result
            args = self._value(node.get("args") or [], env)
            kwargs = self._value(node.get("kwargs") or {}, env)
            try:
                if node["target"] == "getitem":
                    value = operator.getitem(*args)
                else:
                    _, op, overload = node["target"].split(".")
                    value = getattr(getattr(torch.ops.aten, op), overload)(*args, **kwargs)
            except (RuntimeError, TypeError, ValueError, IndexError) as err:
                raise GraphError(f"{self.what} could not be run by the grader: {str(err).splitlines()[0][:300]}") from None
            env[node["name"]] = value
        raise GraphError(f"{self.what} has no output")

    def _value(self, value, env: dict):
        if isinstance(value, dict):
            if "node" in value:
                return env[value["node"]]
            if "device" in value:
                return torch.device("cpu")
            if "memory_format" in value:
                return torch.contiguous_format
            if "layout" in value:
                return torch.strided
            return {k: self._value(v, env) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v, env) for v in value]
        if isinstance(value, tuple):
            return tuple(self._value(v, env) for v in value)
        if isinstance(value, float) and not math.isfinite(value):
            return value
        return value


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """The fraction of rows whose largest logit is the label's; a model whose logits are not finite gets 0."""
    if logits.shape != (len(labels), 10) or not torch.isfinite(logits).all():
        return 0.0
    return (logits.argmax(dim=1) == labels).float().mean().item()
