"""lockgate/db.py in_fixed_shapes: bulk inserts only ever have a few row counts,
so the drivers' per-connection statement caches stay small (the ledger grew by
~3 KB per call when every batch size was its own statement)."""

from __future__ import annotations

import pytest

from lockgate.db import INSERT_SHAPES, in_fixed_shapes


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 100, 255, 256, 500, 511, 1000, 1301])
def test_chunks_keep_every_row_in_order_in_the_fixed_sizes(count):
    rows = list(range(count))
    chunks = list(in_fixed_shapes(rows))
    assert [row for chunk in chunks for row in chunk] == rows
    assert all(len(chunk) in INSERT_SHAPES for chunk in chunks)
    assert [len(c) for c in chunks] == sorted((len(c) for c in chunks), reverse=True)


def test_a_batch_takes_one_statement_per_binary_digit():
    assert [len(c) for c in in_fixed_shapes(list(range(500)))] == [256, 128, 64, 32, 16, 4]
    assert len(list(in_fixed_shapes(list(range(255))))) == 8


def test_every_batch_size_up_to_the_router_s_uses_nine_shapes_at_most():
    shapes = {len(c) for n in range(1, 501) for c in in_fixed_shapes(list(range(n)))}
    assert shapes == set(INSERT_SHAPES)
