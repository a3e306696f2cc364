"""Age in years: a small head over a model's features whose output is a distribution over 0-100 years."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from agegender_cli.labels import MAX_YEARS, N_BINS, expected_years  # noqa: F401 (expected_years: its old home)

YEARS_KINDS = ("linear", "mlp")


class YearsHead(nn.Module):
    """Features -> logits over 0..100 years; the estimate is the expectation of their softmax."""

    def __init__(self, in_features: int, kind: str = "linear", hidden: int = 256) -> None:
        super().__init__()
        if kind not in YEARS_KINDS:
            raise ValueError(f"years head kind must be one of {YEARS_KINDS}")
        self.kind, self.in_features, self.hidden = kind, in_features, hidden
        if kind == "mlp":
            self.hidden_layer = nn.Linear(in_features, hidden)
            self.output = nn.Linear(hidden, N_BINS)
        else:
            self.output = nn.Linear(in_features, N_BINS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.kind == "mlp":
            features = torch.relu(self.hidden_layer(features))
        return self.output(features)

    def spec(self) -> dict:
        """What rebuilds the head: kind, in_features, hidden."""
        return {"kind": self.kind, "in_features": self.in_features, "hidden": self.hidden}


def label_distributions(ages: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian over the bins around each true age (label distribution learning), rows summing to 1."""
    bins = torch.arange(N_BINS, dtype=torch.float32, device=ages.device)
    logits = -((bins[None, :] - ages.float().clamp(0, MAX_YEARS)[:, None]) ** 2) / (2 * sigma**2)
    return torch.softmax(logits, dim=1)


@dataclass(frozen=True)
class YearsFit:
    """One trained head and how it did on val."""

    head: YearsHead
    val_mae: float
    epoch: int
    settings: dict
    history: list[dict]


def fit_years_head(
    train_x: np.ndarray, train_age: np.ndarray, val_x: np.ndarray, val_age: np.ndarray, *, kind: str,
    hidden: int = 256, sigma: float = 2.0, lr: float = 1e-3, weight_decay: float = 1e-4, epochs: int = 60,
    patience: int = 8, batch_size: int = 256, seed: int = 0,
) -> YearsFit:
    """Train a head with KL to a Gaussian label distribution plus the L1 error of the expectation; keep the
    epoch with the lowest val MAE (early stopping after `patience` epochs without a better one)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(train_x).float(), torch.from_numpy(train_age).float()
    # a feature (nearly) constant over the train faces carries nothing; a floor keeps its folded weight finite
    std = x.std(0)
    mean, std = x.mean(0), std.clamp_min(max(1e-6, 1e-2 * float(std.median())))
    x = (x - mean) / std  # trained on standardised features; folded into the first layer at the end
    vx, vy = (torch.from_numpy(val_x).float() - mean) / std, torch.from_numpy(val_age).float()
    head = YearsHead(x.shape[1], kind, hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    bins = torch.arange(N_BINS, dtype=torch.float32)
    best, best_state, best_epoch, stale, history = math.inf, None, 0, 0, []
    for epoch in range(1, epochs + 1):
        head.train()
        for index in torch.randperm(len(x), generator=generator).split(batch_size):
            probs = torch.log_softmax(head(x[index]), 1)
            target = label_distributions(y[index], sigma)
            loss = nn.functional.kl_div(probs, target, reduction="batchmean")
            loss = loss + (probs.exp() @ bins - y[index].clamp(0, MAX_YEARS)).abs().mean() / 10
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            head.eval()
            val_mae = float((torch.softmax(head(vx), 1) @ bins - vy).abs().mean())
        history.append({"epoch": epoch, "val_mae": round(val_mae, 4)})
        if val_mae < best - 1e-4:
            best, best_epoch, stale = val_mae, epoch, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    head.load_state_dict(best_state)
    head = _fold_standardisation(head, mean, std)
    settings = {**head.spec(), "sigma": sigma, "lr": lr, "weight_decay": weight_decay}
    return YearsFit(head, best, best_epoch, settings, history)


def _fold_standardisation(head: YearsHead, mean: torch.Tensor, std: torch.Tensor) -> YearsHead:
    """The same head acting on raw features: W((x - m) / s) + b = (W / s) x + (b - (W / s) m), so cv2.dnn and
    checkpoints get ordinary layers."""
    first = head.hidden_layer if head.kind == "mlp" else head.output
    with torch.no_grad():
        first.weight.div_(std[None, :])
        first.bias.sub_(first.weight @ mean)
    return head.eval()


def choose_years_head(
    train_x: np.ndarray, train_age: np.ndarray, val_x: np.ndarray, val_age: np.ndarray, *, seed: int = 0,
    candidates: tuple[dict, ...] = ({"kind": "linear", "sigma": 2.0}, {"kind": "mlp", "sigma": 2.0},
                                    {"kind": "mlp", "sigma": 3.0}),
) -> tuple[YearsFit, list[dict]]:
    """Fit each candidate and keep the one with the lowest val MAE; the others are reported, not kept."""
    fits = [fit_years_head(train_x, train_age, val_x, val_age, seed=seed, **candidate) for candidate in candidates]
    tried = [{**f.settings, "val_mae": round(f.val_mae, 4), "epoch": f.epoch} for f in fits]
    return min(fits, key=lambda f: f.val_mae), tried


def head_from_state(spec: dict, state: dict[str, torch.Tensor]) -> YearsHead:
    """Rebuild a stored head; ValueError if the spec or weights do not fit."""
    kind, in_features, hidden = spec.get("kind"), spec.get("in_features"), spec.get("hidden")
    if kind not in YEARS_KINDS or not isinstance(in_features, int) or not isinstance(hidden, int) \
            or not (1 <= in_features <= 65_536 and 1 <= hidden <= 65_536):
        raise ValueError("years head spec needs kind linear/mlp and integer in_features and hidden")
    head = YearsHead(in_features, kind, hidden)
    want = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if want != got:
        raise ValueError(f"years head weights do not fit a {kind} head on {in_features} features")
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if isinstance(v, torch.Tensor)):
        raise ValueError("years head weights hold a value that is not a finite number (NaN or infinite)")
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head.eval()
