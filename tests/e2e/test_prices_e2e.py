"""The price book through the real stack: `lockgate prices` over gRPC through
Envoy, the REST face (transcoded), and the edge's platform-admin rule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = pytest.mark.e2e


def cli(stack, *args: str, key: str | None = None):
    return stack.cli("prices", *args, *(("--key", key) if key else ()))


def test_prices_set_list_delete_through_the_gateway(stack):
    model = f"e2e-{uuid.uuid4().hex[:8]}"
    later = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    done = cli(stack, "set", "--provider", "mistral", "--model", model, "--input", "1.20",
               "--output", "3.600", "--from", later, "--json")
    assert done.returncode == 0, done.stderr
    price = json.loads(done.stdout)["price"]
    assert (price["model"], price["effective_date"], price["input_usd_per_mtok"],
            price["output_usd_per_mtok"], price["cached_input_usd_per_mtok"],
            price["source"]) == (model, later, "1.2", "3.6", "1.2", "admin")

    listed = cli(stack, "list", "--model", model)
    assert listed.returncode == 0, listed.stderr
    assert price["price_id"] in listed.stdout and "IN FORCE" in listed.stdout

    # The REST face, and a developer key may read the book but not change it.
    developer = stack.create_key(f"prices-dev-{model}")
    rest = httpx.get(f"{stack.origin}/ledger/v1/prices", params={"model": model},
                     headers={"authorization": f"Bearer {developer}"}, timeout=10)
    assert rest.status_code == 200, rest.text
    assert [p["price_id"] for p in rest.json()["prices"]] == [price["price_id"]]
    refused = cli(stack, "set", "--provider", "mistral", "--model", model, "--input", "0",
                  "--output", "0", key=developer)
    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr
    refused = httpx.delete(f"{stack.origin}/ledger/v1/prices/{price['price_id']}",
                           headers={"authorization": f"Bearer {developer}"}, timeout=10)
    assert refused.status_code == 403

    deleted = cli(stack, "delete", price["price_id"])
    assert deleted.returncode == 0, deleted.stderr
    gone = cli(stack, "delete", price["price_id"])
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr
    past = cli(stack, "set", "--provider", "mistral", "--model", model, "--input", "1",
               "--output", "1", "--from", "2020-01-01")
    assert past.returncode == 1 and "in the past" in past.stderr
