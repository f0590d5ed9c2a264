"""Contextual reasoning (CR, §4.1): a transformer block relating one region to the contact region.

The query features (object RoI in the paper) attend to the features of the hand-object
intersection RoI (key and value), eq. 1-4::

    Q = W_q F^o,  K = W_k F^inter,  V = W_v F^inter         (1×1 convolutions)
    Q' = F^o + softmax(Q Kᵀ / √d_k) V                        (multi-head, d_k = C / heads)
    F^o+ = Q' + MLP(LN(Q'))                                  (2-layer MLP with GELU)
"""

import torch
from torch import nn


class ContextBlock(nn.Module):
    """One CR transformer block; keeps the query's shape `(B, C, H, W)`."""

    def __init__(self, channels: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Conv2d(channels, channels, 1)
        self.key = nn.Conv2d(channels, channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.norm = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels)
        )
        nn.init.xavier_uniform_(self.mlp[0].weight)
        nn.init.xavier_uniform_(self.mlp[2].weight)
        nn.init.normal_(self.mlp[0].bias, std=1e-6)
        nn.init.normal_(self.mlp[2].bias, std=1e-6)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Enhance `query (B, C, H, W)` with `context (B, C, H', W')`."""
        b, c, h, w = query.shape
        q = self._tokens(self.query(query))
        k = self._tokens(self.key(context))
        v = self._tokens(self.value(context))
        attention = torch.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5, dim=-1)
        attended = (attention @ v).transpose(1, 2).reshape(b, h * w, c)
        x = query.flatten(2).transpose(1, 2) + attended
        x = x + self.mlp(self.norm(x))
        return x.transpose(1, 2).reshape(b, c, h, w)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` → per-head tokens `(B, heads, H*W, C/heads)`."""
        b, c = x.shape[:2]
        return x.reshape(b, self.heads, c // self.heads, -1).transpose(-2, -1)


class ContextualReasoning(nn.Module):
    """A stack of `ContextBlock`s sharing the same context features."""

    def __init__(self, channels: int, depth: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ContextBlock(channels, heads, mlp_ratio) for _ in range(depth))

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for layer in self.layers:
            query = layer(query, context)
        return query
