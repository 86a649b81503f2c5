"""call log from Envoy's access log; opted-in bodies

Revision ID: ledger_0009
Revises: ledger_0008
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "ledger_0009"
down_revision = "ledger_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
