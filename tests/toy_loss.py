"""The toy criterion of the subprocess engine tests: cross-entropy with one learned, HUL-style weight."""

import torch
import torch.nn.functional as F
from torch import nn


class WeightedCE(nn.Module):
    "exp(-s) * CE + s / 2 with a learned s: a criterion with parameters, like PMNet's uncertainty weighting."

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.zeros(1))

    def forward(self, logits, batch):
        ce = F.cross_entropy(logits, batch['pid'])
        return {'loss': torch.exp(-self.s[0]) * ce + 0.5 * self.s[0], 'ce': ce}
