"""Whether the model is being captured as a graph (ONNX export, torch.compile) rather than run eagerly.

Captured graphs take the plain code paths: real arithmetic instead of complex numbers (ONNX has no complex
type; inductor handles it poorly), and one pass over all sequences instead of the eager path's groups
written in place (a loop over groups fixes the batch size into the graph and unrolls into thousands of
nodes; in-place writes into views do not export).
"""

import torch


def capturing_graph() -> bool:
    """True while torch.onnx.export or torch.compile traces the model."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
