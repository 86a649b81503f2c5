"""apis: opt-in body logging (log_bodies)

Revision ID: registry_0003
Revises: registry_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0003"
down_revision = "registry_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apis") as batch:
        batch.add_column(sa.Column("log_bodies", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("apis") as batch:
        batch.drop_column("log_bodies")
