"""Ferry: a self-hosted container delivery network that speaks Fly.io's conventions."""

__version__ = "0.1.0"
