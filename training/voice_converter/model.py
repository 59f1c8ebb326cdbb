"""The voice converter: a preset's spectral envelope -> the enrolled speaker's, frame by frame.

Conditioned on the speaker embedding (256-d, `voice_embedding`) and on both voices' statistics (log-F0
and envelope mean/std). The network predicts a residual on top of the classic statistics mapping
(source-normalised envelope rescaled to the target's mean/std): at initialisation it *is* that mapping,
and training on DTW-aligned parallel frames teaches it the content- and speaker-dependent rest.

Convolutional over time with a small receptive field (RECEPTIVE_FRAMES either side), so the serving
side can cut any utterance into fixed-size chunks that the Triton dynamic batcher merges across
requests.
"""

from __future__ import annotations

import torch
from torch import nn

from univoice_core import voice_features as vf
from univoice_core.served import EMBEDDING_DIM

INPUT_LIMIT = 5.0  # stds
RESIDUAL_LIMIT = 2.0  # stds: the most the network may move a coefficient from the statistics mapping
SPEECH_GATE_STDS = 2.5  # frames quieter than the voice's mean loudness by more than this are left alone


class FiLMBlock(nn.Module):
    """Residual conv block whose features are scaled and shifted by the voice condition."""

    def __init__(self, channels: int, kernel: int, condition_dim: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.film = nn.Linear(condition_dim, 2 * channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, hidden: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(condition).unsqueeze(-1).chunk(2, dim=1)
        return hidden + self.mix(torch.nn.functional.gelu(self.conv(hidden) * (1 + scale) + shift))


class VoiceConverter(nn.Module):
    def __init__(self, hidden: int = 192, layers: int = 4, kernel: int = 5, condition_dim: int = 128,
                 dropout: float = 0.1):
        super().__init__()
        self.config = {"hidden": hidden, "layers": layers, "kernel": kernel, "condition_dim": condition_dim,
                       "dropout": dropout}
        dim, stats = vf.ENVELOPE_DIM, vf.STATISTICS_DIM
        # Training-set mean/std of the statistics, so the condition network sees unit-scale inputs.
        self.register_buffer("statistics_mean", torch.zeros(stats))
        self.register_buffer("statistics_scale", torch.ones(stats))
        self.condition = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(EMBEDDING_DIM + 2 * stats, condition_dim), nn.GELU(),
            nn.Linear(condition_dim, condition_dim),
        )
        self.inp = nn.Conv1d(dim, hidden, 1)
        self.blocks = nn.ModuleList(FiLMBlock(hidden, kernel, condition_dim) for _ in range(layers))
        self.out = nn.Conv1d(hidden, dim, 1)
        nn.init.zeros_(self.out.weight)  # start as the statistics mapping
        nn.init.zeros_(self.out.bias)

    @property
    def receptive_frames(self) -> int:
        return self.config["layers"] * (self.config["kernel"] // 2)

    def forward(self, envelope: torch.Tensor, source_statistics: torch.Tensor, target_statistics: torch.Tensor,
                embedding: torch.Tensor) -> torch.Tensor:
        """envelope [B,T,D] (source voice), statistics [B,S] each, embedding [B,256] -> envelope [B,T,D]."""
        normalised = self.normalise(envelope, source_statistics)
        condition = self.condition(torch.cat([
            embedding, (source_statistics - self.statistics_mean) / self.statistics_scale,
            (target_statistics - self.statistics_mean) / self.statistics_scale,
        ], dim=-1))
        # Silence sits many stds below speech: clamp what the network sees, and let it change speech frames
        # only (a soft gate on the source's normalised loudness, c0), so pauses stay pauses.
        hidden = self.inp(normalised.clamp(-INPUT_LIMIT, INPUT_LIMIT).transpose(1, 2))
        for block in self.blocks:
            hidden = block(hidden, condition)
        residual = RESIDUAL_LIMIT * torch.tanh(self.out(hidden).transpose(1, 2) / RESIDUAL_LIMIT)
        speech = torch.sigmoid(4.0 * (normalised[..., :1] + SPEECH_GATE_STDS))
        return self.denormalise(normalised + speech * residual, target_statistics)

    @staticmethod
    def normalise(envelope: torch.Tensor, statistics: torch.Tensor) -> torch.Tensor:
        mean, std = _envelope_moments(statistics)
        return (envelope - mean) / std

    @staticmethod
    def denormalise(normalised: torch.Tensor, statistics: torch.Tensor) -> torch.Tensor:
        mean, std = _envelope_moments(statistics)
        return normalised * std + mean


def _envelope_moments(statistics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return statistics[:, None, vf.ENVELOPE_MEANS], statistics[:, None, vf.ENVELOPE_STDS]


def save(model: VoiceConverter, path, extra: dict) -> None:
    torch.save({"config": model.config, "state_dict": model.state_dict(), **extra}, path)


def load(path) -> tuple[VoiceConverter, dict]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = VoiceConverter(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint
