"""The OPA-format decision log: fields, masking, rotation, a full queue."""

from __future__ import annotations

import json

from lockgate.decision_log import DecisionLog


async def test_entries_have_opas_decision_log_fields(tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl", "auth")
    log.start()
    decision_id = log.record("lockgate/access/decision", {"request": {"path": "/v1/models"}},
                             {"allow": True}, "abc123")
    await log.close()
    [entry] = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert entry["decision_id"] == decision_id and len(decision_id) == 32
    assert entry["path"] == "lockgate/access/decision"
    assert entry["input"] == {"request": {"path": "/v1/models"}}
    assert entry["result"] == {"allow": True}
    assert entry["bundles"] == {"lockgate": {"revision": "abc123"}}
    assert entry["timestamp"].endswith("Z") and entry["labels"] == {"service": "auth"}


async def test_masked_paths_are_erased_and_listed(tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl", "auth", mask=("/principal/key_id", "/absent/x"))
    log.start()
    document = {"principal": {"key_id": "key_1", "roles": ["developer"]}}
    log.record("p", document, True, "r")
    await log.close()
    entry = json.loads((tmp_path / "d.jsonl").read_text())
    assert entry["input"] == {"principal": {"roles": ["developer"]}}
    assert entry["erased"] == ["/input/principal/key_id"]
    assert document["principal"]["key_id"] == "key_1"  # the caller's input is untouched


async def test_the_file_rotates_and_keeps_a_bounded_number_of_backups(tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl", "router", max_bytes=2000, backups=2)
    log.start()
    for i in range(200):
        log.record("p", {"i": i, "pad": "x" * 50}, True, "r")
    await log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["d.jsonl", "d.jsonl.1", "d.jsonl.2"]
    assert all(p.stat().st_size < 2200 for p in tmp_path.iterdir())


def test_a_full_queue_drops_instead_of_blocking(tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl", "auth", max_queue=2)  # writer not started
    ids = [log.record("p", {}, True, "r") for _ in range(5)]
    assert len(set(ids)) == 5  # every call still gets an id, none blocked
    assert len(log._pending) == 2
