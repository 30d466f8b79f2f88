"""Selective activation recomputation (Korthikanti et al. 2022): for a linear layer whose input is a cheap
element-wise function of other tensors (GELU of the hidden layer; the gated attention output), keep those
tensors for the backward pass and recompute the input, instead of keeping the input. Outputs and gradients
are unchanged; a training step keeps 4·dim fewer floats per token per block.
"""

from typing import Callable, Optional

import torch
import torch.nn.functional as F


def linear_of(make_input: Callable[..., torch.Tensor], weight: torch.Tensor, bias: Optional[torch.Tensor], *ingredients):
    """F.linear(make_input(*ingredients), weight, bias), storing the ingredients for the backward."""
    if not torch.is_grad_enabled():
        return F.linear(make_input(*ingredients), weight, bias)
    return _LinearOfRecomputed.apply(make_input, weight, bias, *ingredients)


class _LinearOfRecomputed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, make_input, weight, bias, *ingredients):
        ctx.make_input = make_input
        ctx.save_for_backward(weight, bias, *ingredients)
        return F.linear(make_input(*ingredients), weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        weight, bias, *ingredients = ctx.saved_tensors
        with torch.enable_grad():
            leaves = [tensor.detach().requires_grad_(tensor.requires_grad) for tensor in ingredients]
            linear_input = ctx.make_input(*leaves)
        # under autocast the forward multiplied in the output's dtype: do the same here
        dtype = grad_output.dtype
        grad_input = grad_output @ weight.to(dtype)
        needing = [leaf for leaf in leaves if leaf.requires_grad]
        grads = iter(torch.autograd.grad(linear_input, needing, grad_input.to(linear_input.dtype)) if needing else ())
        grad_ingredients = [next(grads) if leaf.requires_grad else None for leaf in leaves]

        flat_grad = grad_output.reshape(-1, grad_output.shape[-1])
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            flat_input = linear_input.detach().reshape(-1, linear_input.shape[-1]).to(dtype)
            grad_weight = (flat_grad.T @ flat_input).to(weight.dtype)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = flat_grad.sum(dim=0).to(bias.dtype)
        return (None, grad_weight, grad_bias, *grad_ingredients)
