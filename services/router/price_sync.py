"""The router's price book follows the ledger's: shipped list prices plus the
versions platform admins set (`lockgate prices set`).

Every `interval` seconds the router asks the ledger for the whole book
(ListPrices: a few hundred small rows) and, when it differs from the one in use,
hands the new book to `on_change`, which swaps in a routing table priced with
it (services/router/app.py). Calls metered from then on cost the new price; a
deployment's own `price:` in the gateway config still wins.

Off the hot path: a call never waits for the ledger's prices. While the ledger
cannot be reached the last book stays in use (the shipped file at first), and
that is logged once per outage, not once per attempt.

The table resolves each deployment's price for the current UTC date when it
is built, so the book is also handed over when the date changes and a version
takes effect that day.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import grpc

from lockgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from lockgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from lockgate.metrics import Counter
from lockgate.periodic import Periodic
from lockgate.prices import Price, PriceBook, shipped_price_book

log = logging.getLogger("lockgate.router.prices")

PRICE_REFRESHES = Counter(
    "lockgate_router_price_refreshes_total",
    "Price book refreshes from the ledger, by result (unchanged, changed, failed)",
    ["result"],
)
#: Bound on one ListPrices call.
TIMEOUT_SECONDS = 5.0


def utc_today() -> date:
    return datetime.now(UTC).date()


def book_of(shipped: PriceBook, listed: list[ledger_pb.PriceVersion]) -> PriceBook:
    """`shipped` plus every listed version; on the same model and date, an admin
    version wins over a shipped one. ValueError on a malformed version."""
    overrides: dict[str, list[Price]] = {}
    # Shipped first, so the admin version of the same date replaces it.
    for version in sorted(listed, key=lambda v: v.source == "admin"):
        try:
            price = Price(
                input=Decimal(version.input_usd_per_mtok),
                output=Decimal(version.output_usd_per_mtok),
                cached_input=Decimal(version.cached_input_usd_per_mtok
                                     or version.input_usd_per_mtok),
                since=date.fromisoformat(version.effective_date),
            )
        except (InvalidOperation, ValueError):
            raise ValueError(
                f"malformed price of {version.provider}/{version.model}"
                f" effective {version.effective_date!r}"
            ) from None
        if not all(p.is_finite() and p >= 0 for p in (price.input, price.output,
                                                       price.cached_input)):
            raise ValueError(f"malformed price of {version.provider}/{version.model}")
        key = f"{version.provider}/{version.model}"
        overrides.setdefault(key, []).append(price)
    return shipped.merged(overrides)


class PriceSync(Periodic):
    def __init__(
        self,
        stub: ledger_grpc.LedgerServiceStub,
        on_change: Callable[[PriceBook], None],
        *,
        interval: float = 30.0,
        shipped: PriceBook | None = None,
        today: Callable[[], date] = utc_today,
    ):
        super().__init__("price-sync", interval, self.refresh, immediately=True)
        self.stub = stub
        self.on_change = on_change
        self.shipped = shipped if shipped is not None else shipped_price_book()
        #: The book in use: the shipped one until the ledger answers.
        self.book = self.shipped
        self.today = today
        self._day = today()
        self._reachable = True

    async def refresh(self) -> bool:
        """Read the ledger's book now; True when a new book was handed over."""
        book = self.book
        try:
            reply = await self.stub.ListPrices(ledger_pb.ListPricesRequest(),
                                               timeout=TIMEOUT_SECONDS)
            book = book_of(self.shipped, list(reply.prices))
        except grpc.aio.AioRpcError as exc:
            PRICE_REFRESHES.labels("failed").inc()
            if self._reachable:
                self._reachable = False
                log.warning("cannot read the price book from the ledger; keeping the one in"
                            " use until it answers", extra={"code": exc.code().name})
        except ValueError as exc:
            PRICE_REFRESHES.labels("failed").inc()
            log.error("price book from the ledger rejected; keeping the one in use",
                      extra={"error": str(exc)})
        else:
            if not self._reachable:
                self._reachable = True
                log.info("price book readable from the ledger again")
            PRICE_REFRESHES.labels("unchanged" if book == self.book else "changed").inc()
        changed = book != self.book
        today = self.today()
        # A version that took effect since the last look changes what the table charges.
        changed = changed or any(self._day < p.since <= today for _, _, p in book.versions())
        if changed:
            self.on_change(book)  # raises: the next refresh tries again
            log.info("price book updated", extra={"models": len(book)})
        self.book, self._day = book, today
        return changed
