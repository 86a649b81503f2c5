"""Provider adapters, one module each, behind the Provider protocol (base.py)."""

from services.router.providers.base import Provider
from services.router.providers.openai import OpenAIProvider

__all__ = ["Provider", "OpenAIProvider", "build_provider"]


def build_provider(name, config, session) -> Provider:
    """The adapter for a provider config entry."""
    if config.type == "openai":
        return OpenAIProvider(name, config, session)
    raise ValueError(f"unknown provider type {config.type!r}")  # config validation prevents this
