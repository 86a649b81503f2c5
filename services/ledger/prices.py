"""Price book use cases: list the shipped and admin-set versions, set a version,
delete one that is not in force yet.

The book is gateway-wide (no tenant): prices are what providers charge, the
same for every tenant. Changing it is for platform admins; reading it is for
any caller, and for the router, which asks without an identity
(services/router/price_sync.py).

A version takes effect on a UTC date, today or later, never earlier: the cost
of a usage entry is fixed when it is metered, so past usage keeps its price,
and a version in force can be superseded by a newer one but not deleted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from lockgate.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from lockgate.identity import Identity
from lockgate.ids import new_id
from lockgate.prices import PROVIDER_TYPES, PriceBook, amount, amount_text, shipped_price_book
from services.ledger.models import PriceVersion
from services.ledger.price_store import PriceStore

log = logging.getLogger("lockgate.ledger.prices")

PLATFORM_ADMIN = "platform_admin"
SHIPPED = "shipped"
ADMIN = "admin"
MAX_MODEL_LENGTH = 256
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Printable, no whitespace: a model name as providers spell it ("gpt-4o",
#: "meta-llama/Llama-3.1-8B", "claude-sonnet-4-5@20250929").
_MODEL = re.compile(r"^[^\s\x00-\x1f\x7f]+$")


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class ListedPrice:
    """One version of the book as ListPrices shows it; amounts in USD per million tokens."""

    provider: str
    model: str
    effective_date: date
    input: Decimal
    output: Decimal
    cached_input: Decimal
    #: "shipped" (lockgate/data/prices.yaml) or "admin" (SetPrice).
    source: str
    price_id: str = ""
    created_at: datetime | None = None
    created_by: str = ""


class PriceService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        shipped: PriceBook | None = None,
        today: Callable[[], date] = utc_today,
    ):
        self.sessions = sessions
        self.shipped = shipped if shipped is not None else shipped_price_book()
        self.today = today

    async def list_prices(self, provider: str = "", model: str = "") -> list[ListedPrice]:
        """Shipped and admin versions, by provider and model, newest effective date
        first (on the same date the admin version, which wins, comes first)."""
        if provider and provider not in PROVIDER_TYPES:
            raise _unknown_provider(provider)
        async with self.sessions() as session:
            rows = await PriceStore(session).listed(provider, model)
        found = [_listed(row) for row in rows]
        found += [
            ListedPrice(p, m, price.since, price.input, price.output, price.cached_input, SHIPPED)
            for p, m, price in self.shipped.versions()
            if (not provider or p == provider) and (not model or m == model)
        ]
        found.sort(key=lambda v: (v.provider, v.model, -v.effective_date.toordinal(),
                                  v.source != ADMIN))
        return found

    async def set_price(
        self,
        caller: Identity,
        *,
        provider: str,
        model: str,
        effective_date: str = "",
        input_usd: str,
        output_usd: str,
        cached_input_usd: str = "",
    ) -> ListedPrice:
        """Add the version of (provider, model) effective on a date (default today,
        UTC); the same model and date set again replaces the admin version."""
        _require_platform_admin(caller, "setting a price")
        if not provider:
            raise InvalidRequest("provider is required", param="provider")
        if provider not in PROVIDER_TYPES:
            raise _unknown_provider(provider)
        _check_model(model)
        today = self.today()
        day = _parse_date(effective_date) if effective_date else today
        if day < today:
            raise InvalidRequest(
                f"effective_date {day.isoformat()} is in the past: a price takes effect today"
                f" ({today.isoformat()}, UTC) or later, so past usage keeps its price",
                param="effective_date",
            )
        price_in = _amount(input_usd, "input_usd_per_mtok")
        price_out = _amount(output_usd, "output_usd_per_mtok")
        cached = (
            _amount(cached_input_usd, "cached_input_usd_per_mtok")
            if cached_input_usd.strip() else price_in
        )
        values = {
            "input_usd_per_mtok": amount_text(price_in),
            "output_usd_per_mtok": amount_text(price_out),
            "cached_input_usd_per_mtok": amount_text(cached),
            "created_by": caller.principal or f"key:{caller.key_id}",
            "created_at": datetime.now(UTC),
        }
        try:
            row = await self._upsert(provider, model, day, values)
        except IntegrityError:
            # Another replica inserted the same (provider, model, date) meanwhile:
            # now it exists, and this call replaces it like any second set.
            row = await self._upsert(provider, model, day, values)
        log.info("price set", extra={"price_id": row.price_id, "provider": provider,
                                     "model": model, "effective_date": day.isoformat(),
                                     "by": values["created_by"]})
        return _listed(row)

    async def delete_price(self, caller: Identity, price_id: str) -> None:
        """Remove an admin version that is not in force yet."""
        _require_platform_admin(caller, "deleting a price")
        if not price_id:
            raise InvalidRequest("price_id is required (shipped prices have none and cannot"
                                 " be deleted)", param="price_id")
        async with self.sessions() as session, session.begin():
            store = PriceStore(session)
            row = await store.get(price_id)
            if row is None:
                raise NotFound(f"price {price_id} not found")
            if row.effective_date <= self.today():
                raise FailedPrecondition(
                    f"price {price_id} is in force since {row.effective_date.isoformat()}:"
                    " usage was metered at it; set a new version instead",
                )
            await store.delete(row)
        log.info("price deleted", extra={"price_id": price_id, "provider": row.provider,
                                         "model": row.model,
                                         "by": caller.principal or f"key:{caller.key_id}"})

    async def _upsert(self, provider: str, model: str, day: date, values: dict) -> PriceVersion:
        async with self.sessions() as session, session.begin():
            store = PriceStore(session)
            row = await store.on(provider, model, day)
            if row is None:
                row = PriceVersion(price_id=new_id("pr"), provider=provider, model=model,
                                   effective_date=day, **values)
                store.add(row)
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            await store.flush()
        return row


def _listed(row: PriceVersion) -> ListedPrice:
    return ListedPrice(
        provider=row.provider,
        model=row.model,
        effective_date=row.effective_date,
        input=Decimal(row.input_usd_per_mtok),
        output=Decimal(row.output_usd_per_mtok),
        cached_input=Decimal(row.cached_input_usd_per_mtok),
        source=ADMIN,
        price_id=row.price_id,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _require_platform_admin(caller: Identity, action: str) -> None:
    # The edge checks method roles too (policies/lockgate/access/data.json); this
    # holds for callers that reach the ledger some other way.
    if PLATFORM_ADMIN not in caller.roles:
        raise PermissionDenied(f"{action} needs the platform_admin role")


def _unknown_provider(provider: str) -> InvalidRequest:
    return InvalidRequest(
        f"unknown provider type {provider!r}: use one of {', '.join(PROVIDER_TYPES)}",
        param="provider",
    )


def _check_model(model: str) -> None:
    if not model:
        raise InvalidRequest("model is required", param="model")
    if len(model) > MAX_MODEL_LENGTH:
        raise InvalidRequest(f"model is longer than {MAX_MODEL_LENGTH} characters",
                             param="model")
    if not _MODEL.match(model):
        raise InvalidRequest("model must not contain spaces or control characters",
                             param="model")


def _parse_date(text: str) -> date:
    try:
        if not _DATE.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"effective_date {text!r} is not a date (YYYY-MM-DD)",
                             param="effective_date") from None


def _amount(text: str, field: str) -> Decimal:
    if not text.strip():
        raise InvalidRequest(f"{field} is required", param=field)
    try:
        return amount(text)
    except ValueError as exc:
        raise InvalidRequest(f"{field}: {exc}", param=field) from None
