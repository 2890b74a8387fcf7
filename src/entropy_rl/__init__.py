"""entropy_rl: policy entropy in RL of language models."""

__version__ = "0.1.0"
