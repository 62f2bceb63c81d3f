"""Training losses shared by stand-alone training, distillation and the supernet."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_c p_c log softmax(logits)_c``: cross-entropy to a teacher's
    probabilities (the paper's distillation loss; equals KL divergence up to the teacher's entropy)."""
    return -(target_probs.to(logits.dtype) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
