"""Fitting a random model's output layers to speech-like input, so decoding is not degenerate.

Random weights turn speech features into hidden states that are highly correlated from frame to
frame, so a random read-out picks the same few tokens everywhere, or nothing. The builders feed
a synthetic stand-in for normalised speech features through the random encoder and set the
read-out from the statistics of what comes out: that fixes how often a token is emitted and
spreads the choice over the vocabulary. Only weight values change, never shapes or compute.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_FEATURE_SEED = 1234  # fixed: the stand-in features are the same for every build
N_MELS = 80


def speech_like_features(seconds: float, lfr_m: int, lfr_n: int) -> torch.Tensor:
    """Normalised log-mel-like features, low-frame-rate stacked: shape (1, frames, 80 * lfr_m).

    Built in feature space (no audio): a loudness track with ~4 Hz syllable modulation and
    pauses, a smoothly drifting spectral envelope, and noise. After CMVN real speech looks
    like this to first order: about zero mean, unit variance, strongly correlated bins.
    """
    rng = np.random.RandomState(_FEATURE_SEED)
    n = int(seconds * 100)  # 10 ms frames
    t = np.arange(n) / 100.0

    def smooth(steps: int, width: int) -> np.ndarray:
        kernel = np.hanning(width)
        noise = rng.randn(steps + width)
        return np.convolve(noise, kernel / kernel.sum(), mode="same")[:steps] * math.sqrt(width / 3)

    loudness = 0.8 * np.sin(2 * np.pi * 4.0 * t + smooth(n, 50)) + 0.5 * smooth(n, 30)
    pauses = smooth(n, 80) < -0.6  # ~15 % of the time
    loudness[pauses] = -2.0
    bins = np.arange(N_MELS)
    envelope = sum(np.outer(smooth(n, 20), np.cos(np.pi * j * (bins + 0.5) / N_MELS)) / j for j in range(1, 7))
    frames = loudness[:, None] + 0.8 * envelope + 0.4 * rng.randn(n, N_MELS)
    frames = (frames - frames.mean(0)) / frames.std(0)

    starts = range(0, n - lfr_m + 1, lfr_n)
    stacked = np.stack([frames[s : s + lfr_m].reshape(-1) for s in starts])
    return torch.from_numpy(stacked.astype(np.float32))[None]


def whitening(hidden: torch.Tensor, ridge: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and a matrix ``P`` with ``(h - mean) @ P`` about white over ``hidden`` (N, d).

    ``ridge`` (a fraction of the average variance) keeps directions the stand-in barely
    varies along from being amplified without bound on real input.
    """
    mean = hidden.mean(0)
    centred = (hidden - mean).double()
    cov = centred.T @ centred / max(len(hidden) - 1, 1)
    cov += ridge * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
    values, vectors = torch.linalg.eigh(cov)
    return mean, (vectors @ torch.diag(values.rsqrt()) @ vectors.T).float()


def whiten_rows(layer: torch.nn.Linear, rows: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Re-aim ``layer``'s output ``rows`` so each gives ~N(0, 1) logits over ``hidden``.

    Each row keeps its random direction, but measured in whitened coordinates, so every
    output is about equally likely to be the largest. Returns the new logits over ``hidden``.
    """
    mean, whiten = whitening(hidden)
    with torch.no_grad():
        directions = torch.nn.functional.normalize(layer.weight[rows], dim=1)
        weight = directions @ whiten.T
        layer.weight[rows] = weight
        layer.bias[rows] = -(weight @ mean)
    return (hidden - mean) @ whiten @ directions.T
