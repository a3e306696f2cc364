"""Architecture A: a frozen InceptionResnetV1 trunk, a trainable tail and two heads."""

from __future__ import annotations

import torch
from torch import nn

# The order of facenet-pytorch's InceptionResnetV1 children up to the embedding.
TRUNK_ORDER = (
    "conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
    "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8", "avgpool_1a",
)
# --unfreeze NAME: NAME and everything after it trains; the trunk before it stays frozen.
UNFREEZE_CHOICES = ("last_linear", "block8", "repeat_3")
FORMAT = "agegender.facenet/1"


def split_backbone(backbone: nn.Module, unfreeze: str) -> tuple[nn.Sequential, nn.Sequential]:
    """(frozen trunk, trainable blocks before the pooling) for an unfreeze point."""
    if unfreeze not in UNFREEZE_CHOICES:
        raise ValueError(f"unfreeze must be one of {UNFREEZE_CHOICES}")
    cut = TRUNK_ORDER.index("avgpool_1a") if unfreeze == "last_linear" else TRUNK_ORDER.index(unfreeze)
    frozen = nn.Sequential(*(getattr(backbone, name) for name in TRUNK_ORDER[:cut]))
    trainable = nn.Sequential(*(getattr(backbone, name) for name in TRUNK_ORDER[cut:-1]))
    return frozen, trainable


class FrozenTrunk(nn.Module):
    """The frozen part of the backbone; with last_linear only it also pools to 1792 features."""

    def __init__(self, frozen: nn.Sequential, pool: bool) -> None:
        super().__init__()
        self.frozen = frozen
        self.pool = pool
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenTrunk:
        # folded BatchNorms must keep their running statistics
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.frozen(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1) if self.pool else x


def make_head(kind: str, n_out: int, hidden: int, dropout: float) -> nn.Module:
    if kind == "linear":
        return nn.Linear(512, n_out)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(512, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))
    raise ValueError(f"unknown head '{kind}': linear or mlp")


class AgeGenderTail(nn.Module):
    """The trainable part: deeper blocks (optional), last_linear, last_bn and the two heads."""

    def __init__(
        self, blocks: nn.Sequential, last_linear: nn.Linear, last_bn: nn.BatchNorm1d,
        head: str = "linear", hidden: int = 256, dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.blocks = blocks
        self.last_linear = last_linear
        self.last_bn = last_bn
        self.dropout = nn.Dropout(dropout if head == "mlp" else 0.0)
        self.gender_head = make_head(head, 2, hidden, dropout)
        self.age_head = make_head(head, 8, hidden, dropout)
        for module in self.blocks.modules():  # keep the folded BatchNorms of the blocks frozen in eval mode
            if isinstance(module, nn.BatchNorm2d):
                module.requires_grad_(False)

    def train(self, mode: bool = True) -> AgeGenderTail:
        super().train(mode)
        for module in self.blocks.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The 512-value embedding both heads (and a years head) read."""
        if len(self.blocks):
            features = self.blocks(features)
            features = torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)
        return self.last_bn(self.last_linear(self.dropout(features)))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(features)
        return self.gender_head(embedding), self.age_head(embedding)


def build(backbone: nn.Module, unfreeze: str, head: str, hidden: int, dropout: float
          ) -> tuple[FrozenTrunk, AgeGenderTail]:
    """Cut a loaded InceptionResnetV1 into a frozen trunk and a fresh trainable tail."""
    frozen, blocks = split_backbone(backbone, unfreeze)
    trunk = FrozenTrunk(frozen, pool=unfreeze == "last_linear")
    tail = AgeGenderTail(blocks, backbone.last_linear, backbone.last_bn, head, hidden, dropout)
    tail.last_linear.requires_grad_(True)
    tail.last_bn.requires_grad_(True)
    return trunk, tail


def standardize(batch_bgr_uint8: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) BGR uint8 -> (N, 3, H, W) RGB float, facenet's fixed standardisation."""
    x = batch_bgr_uint8.flip(-1).permute(0, 3, 1, 2).float()
    return (x - 127.5) / 128.0
