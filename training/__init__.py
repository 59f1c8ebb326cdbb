"""Model training (speaker-conditioned voice conversion lands here; see training/README.md)."""
