"""LedgerService RPCs ListPrices, SetPrice, DeletePrice: convert, call the service, convert."""

from __future__ import annotations

from lockgate.identity import identity_from_metadata
from lockgate.ledger.v1 import ledger_service_pb2 as pb
from lockgate.prices import amount_text
from lockgate.timestamps import to_timestamp
from services.ledger.prices import ListedPrice, PriceService


def price_to_proto(price: ListedPrice) -> pb.PriceVersion:
    out = pb.PriceVersion(
        price_id=price.price_id,
        provider=price.provider,
        model=price.model,
        effective_date=price.effective_date.isoformat(),
        input_usd_per_mtok=amount_text(price.input),
        output_usd_per_mtok=amount_text(price.output),
        cached_input_usd_per_mtok=amount_text(price.cached_input),
        source=price.source,
        created_by=price.created_by,
    )
    if price.created_at is not None:
        out.create_time.CopyFrom(to_timestamp(price.created_at))
    return out


class PriceRpcs:
    """Mixin of LedgerServicer; reads `self.prices` (PriceService)."""

    prices: PriceService

    async def ListPrices(self, request: pb.ListPricesRequest, context) -> pb.ListPricesResponse:
        # No caller identity needed: the book is gateway-wide, and the router
        # reads it directly (the edge still authenticates outside callers).
        found = await self.prices.list_prices(request.provider, request.model)
        return pb.ListPricesResponse(prices=[price_to_proto(p) for p in found])

    async def SetPrice(self, request: pb.SetPriceRequest, context) -> pb.SetPriceResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        price = await self.prices.set_price(
            caller,
            provider=request.provider,
            model=request.model,
            effective_date=request.effective_date,
            input_usd=request.input_usd_per_mtok,
            output_usd=request.output_usd_per_mtok,
            cached_input_usd=request.cached_input_usd_per_mtok,
        )
        return pb.SetPriceResponse(price=price_to_proto(price))

    async def DeletePrice(self, request: pb.DeletePriceRequest, context
                          ) -> pb.DeletePriceResponse:
        caller = identity_from_metadata(context.invocation_metadata())
        await self.prices.delete_price(caller, request.price_id)
        return pb.DeletePriceResponse()
