"""The routing table: one immutable snapshot of the gateway config with its
provider adapters, deployments and their health, swapped as a whole on reload.

A request reads `TableHolder.current` once and keeps that snapshot to the end,
so a reload never changes a request halfway (no dropped in-flight calls); the
next request sees the new table. Adapters whose provider config did not change
are carried over to the new table, and health is kept per deployment name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lockgate.errors import InvalidRequest, ModelNotFound
from lockgate.prices import Price, PriceBook, price_from
from lockgate.upstream_client import UpstreamClient
from services.router.config import (
    AliasConfig,
    DeploymentConfig,
    GatewayConfig,
    ProviderConfig,
    TimeoutsConfig,
)
from services.router.health import DeploymentHealth, HealthBoard
from services.router.providers import Provider, build_provider

log = logging.getLogger("lockgate.router.table")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment as routing sees it (a strategies.Candidate)."""

    deployment: str
    config: DeploymentConfig
    provider_name: str
    provider_type: str
    provider: Provider
    timeouts: TimeoutsConfig
    health: DeploymentHealth
    price: Price | None
    #: "config", "price_book", or "" when the price is unknown.
    price_source: str = ""

    @property
    def priority(self) -> int:
        return self.config.priority

    @property
    def weight(self) -> float:
        return self.config.weight

    def policy_view(self) -> dict:
        """What routing policy sees of the deployment (no URLs, no secrets)."""
        return {
            "name": self.deployment,
            "provider": self.provider_name,
            "provider_type": self.provider_type,
            "model": self.config.model,
            "region": self.config.region,
            "labels": dict(self.config.labels),
        }


@dataclass(slots=True)
class RoutingTable:
    generation: int
    config: GatewayConfig
    providers: dict[str, tuple[ProviderConfig, Provider]]
    deployments: dict[str, Deployment]
    _policy_views: dict[str, list[dict]] = field(default_factory=dict)

    def alias(self, name: str, kind: str) -> AliasConfig:
        """The alias config; 404 for unknown aliases, 400 for the wrong endpoint."""
        cfg = self.config.models.get(name)
        if cfg is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or you do not have access to it.",
                param="model",
            )
        if cfg.kind != kind:
            raise InvalidRequest(
                f"The model `{name}` is a {cfg.kind} model and does not support this endpoint.",
                param="model", code="model_not_supported",
            )
        return cfg

    def candidates(self, alias: str) -> list[Deployment]:
        return [self.deployments[name] for name in self.config.models[alias].deployments]

    def policy_view(self, alias: str) -> list[dict]:
        view = self._policy_views.get(alias)
        if view is None:
            view = self._policy_views[alias] = [d.policy_view() for d in self.candidates(alias)]
        return view


def build_table(
    config: GatewayConfig,
    generation: int,
    health: HealthBoard,
    prices: PriceBook,
    previous: RoutingTable | None = None,
    upstream: UpstreamClient | None = None,
) -> RoutingTable:
    """A table for `config`, reusing `previous`'s adapters where the provider
    config is unchanged. Every provider call goes through `upstream` (the
    router's shared pool)."""
    health.reconfigure(config.routing.circuit_breaker, config.routing.latency_ewma_alpha)
    providers: dict[str, tuple[ProviderConfig, Provider]] = {}
    for name, provider_config in config.providers.items():
        old = previous.providers.get(name) if previous else None
        if old is not None and old[0] == provider_config:
            providers[name] = old
        else:
            providers[name] = (provider_config, build_provider(
                name, provider_config, upstream))
    deployments = {}
    for name, dep in config.deployments.items():
        provider_config, provider = providers[dep.provider]
        if dep.price is not None:
            price = price_from(dep.price.model_dump(exclude_none=True), f"deployments.{name}.price")
            source = "config"
        else:
            price = prices.at(provider_config.type, dep.model)
            source = "price_book" if price is not None else ""
        deployments[name] = Deployment(
            deployment=name,
            config=dep,
            provider_name=dep.provider,
            provider_type=provider_config.type,
            provider=provider,
            timeouts=dep.timeouts or provider_config.timeouts,
            health=health.get(name),
            price=price,
            price_source=source,
        )
    health.forget_except(set(deployments))
    return RoutingTable(generation, config, providers, deployments)


class TableHolder:
    """The current table; replaced atomically (one attribute store) on reload."""

    def __init__(self, table: RoutingTable):
        self.current = table
