"""Adapters that plug entropy_rl's entropy-control losses into third-party trainers."""
