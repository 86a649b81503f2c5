"""Provider adapters, one module each, behind the Provider protocol (base.py).

Every adapter class is built as `Adapter(name, ProviderConfig, UpstreamClient |
None)`: its calls, unary and streamed, go through the lean client
(lockgate/upstream_client.py; the router passes its shared one, an adapter built
alone makes its own).
"""

from __future__ import annotations

import importlib

from lockgate.upstream_client import UpstreamClient
from services.router.config import ProviderConfig
from services.router.providers.base import Provider

__all__ = ["Provider", "build_provider"]

#: ProviderConfig.type -> "module:class".
ADAPTERS = {
    "openai": "services.router.providers.openai:OpenAIProvider",
    "azure": "services.router.providers.azure:AzureOpenAIProvider",
    "mistral": "services.router.providers.mistral:MistralProvider",
    "anthropic": "services.router.providers.anthropic:AnthropicProvider",
    "gemini": "services.router.providers.gemini:GeminiProvider",
}


def build_provider(name: str, config: ProviderConfig,
                   upstream: UpstreamClient | None = None) -> Provider:
    """The adapter for a provider config entry."""
    module, _, cls = ADAPTERS[config.type].partition(":")
    return getattr(importlib.import_module(module), cls)(name, config, upstream)
