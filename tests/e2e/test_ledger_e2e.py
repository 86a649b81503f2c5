"""The ledger through the real stack.

- Budgets: a tenant admin sets a hard daily budget on a developer's key with the
  CLI; the key's calls go through until the budget could be exceeded, then the
  official SDK gets a RateLimitError that names the budget; `lockgate budgets
  list` shows the spend.
- SDK retries: every request the SDK sends is one usage entry, never two."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.e2e.test_admin_e2e import unique
from tests.e2e.test_chat_e2e import client

pytestmark = pytest.mark.e2e


def run(stack, *args: str, code: int = 0):
    done = stack.cli(*args)
    assert done.returncode == code, f"lockgate {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


def cli_json(stack, *args: str, key: str) -> dict:
    return json.loads(run(stack, *args, "--json", "--key", key).stdout)


def cli_json_lines(stack, *args: str, key: str) -> list[dict]:
    """`lockgate usage --json`: one JSON object per line."""
    out = run(stack, *args, "--json", "--key", key).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def team(stack) -> dict:
    """A new tenant with an admin (boss) and a developer of team `ml`, with keys."""
    tenant = unique("budget")
    admin = stack.admin_key
    cli_json(stack, "tenants", "create", "--name", tenant, key=admin)
    cli_json(stack, "teams", "create", "--tenant", tenant, "--name", "ml", key=admin)
    out = {"tenant": tenant}
    for user, rights in (("boss", ("--role", "tenant_admin")), ("dev", ("--member", "ml=developer"))):
        email = f"{user}@{tenant}.example"
        cli_json(stack, "users", "create", "--tenant", tenant, "--email", email, *rights, key=admin)
        roles = ("--role", "tenant_admin") if user == "boss" else ()
        created = cli_json(stack, "keys", "create", "--tenant", tenant, "--name", f"{user}-key",
                           "--owner", f"users/{email}", *roles, key=admin)
        out[user] = created["secret"]
        out[f"{user}_id"] = created["key"]["id"]
    return out


def ask(stack, key: str, max_tokens: int):
    return client(stack, key=key).chat.completions.create(
        model="priced", max_tokens=max_tokens,
        messages=[{"role": "user", "content": "count the budget"}])


def test_hard_budget_on_a_key_stops_its_calls(stack, team):
    # A call of this size costs about $0.02 at most ($1000/M input, $2000/M output).
    done = run(stack, "budgets", "set", "--key", team["dev_id"], "--usd", "0.10",
               "--period", "day", "--timezone", "Europe/Berlin", "--hard",
               "--admin-key", team["boss"])
    assert "hard budget bgt_" in done.stdout and "$0.10 per day (Europe/Berlin)" in done.stdout
    budget_id = done.stdout.split("hard budget ")[1].split()[0]

    answered = 0
    refusal = None
    for _ in range(20):
        try:
            ask(stack, team["dev"], max_tokens=8)
            answered += 1
        except openai.RateLimitError as exc:
            refusal = exc
            break
    assert refusal is not None, "the budget never ran out"
    assert 2 <= answered <= 10
    body = refusal.response.json()["error"]
    assert body["code"] == "budget_exceeded" and budget_id in body["message"]
    assert int(refusal.response.headers["retry-after"]) > 0

    # the boss's own key has no budget: unaffected
    assert ask(stack, team["boss"], max_tokens=8).choices

    # spend is visible to the tenant and settles (no reservation left)
    deadline = time.monotonic() + 10
    while True:
        listed = cli_json(stack, "budgets", "list", key=team["boss"])["budgets"]
        (mine,) = [b for b in listed if b["budget_id"] == budget_id]
        if int(mine["reserved_micro_usd"]) == 0 and int(mine["spent_micro_usd"]) > 0:
            break
        assert time.monotonic() < deadline, mine
        time.sleep(0.2)
    assert int(mine["spent_micro_usd"]) <= 100_000

    # a developer may not raise their own budget (the edge refuses before the ledger)
    denied = stack.cli("budgets", "set", "--key", team["dev_id"], "--usd", "100",
                       "--period", "day", "--hard", "--admin-key", team["dev"])
    assert denied.returncode == 1 and "needs one of the roles" in denied.stderr

    # raising it lets the key call again
    run(stack, "budgets", "set", "--key", team["dev_id"], "--usd", "5", "--period", "day",
        "--timezone", "Europe/Berlin", "--hard", "--admin-key", team["boss"])
    assert ask(stack, team["dev"], max_tokens=8).choices
    run(stack, "budgets", "delete", budget_id, "--key", team["boss"])
    assert budget_id not in run(stack, "budgets", "list", "--key", team["boss"]).stdout


def test_sdk_retries_are_one_entry_per_request(stack, team):
    """The SDK retries a 503 twice: three requests reach the gateway, each its own
    provider attempt and request id, so three entries; none is counted twice."""
    retrying = openai.OpenAI(base_url=stack.base_url, api_key=team["dev"], max_retries=2)
    with pytest.raises(openai.APIStatusError) as failed:
        retrying.chat.completions.create(
            model="unreachable", messages=[{"role": "user", "content": "retry me"}])
    assert failed.value.status_code == 503
    answered = retrying.chat.completions.with_raw_response.create(
        model="priced", max_tokens=4, messages=[{"role": "user", "content": "once"}])
    request_id = answered.headers["x-request-id"]

    def by_alias() -> dict[str, dict]:
        rows = cli_json_lines(stack, "usage", "--by", "alias", "--since", "1h", key=team["boss"])
        return {row["group"]["alias"]: row for row in rows}

    deadline = time.monotonic() + 10
    while True:
        rows = by_alias()
        if int(rows.get("unreachable", {}).get("requests", 0)) >= 3 and "priced" in rows:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    time.sleep(0.5)  # anything counted twice would have arrived by now
    rows = by_alias()
    assert int(rows["unreachable"]["requests"]) == 3
    assert int(rows["unreachable"]["errors"]) == 3
    entries = cli_json_lines(stack, "usage", "--limit", "200", key=team["boss"])
    assert [e["request_id"] for e in entries].count(request_id) == 1
