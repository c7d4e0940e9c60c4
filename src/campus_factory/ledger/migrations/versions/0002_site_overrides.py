"""Site overrides: a floor and ceiling of pilots per site set with `campus-factory site scale`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_overrides",
        sa.Column("factory", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("floor", sa.Integer, nullable=True),
        sa.Column("ceiling", sa.Integer, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("site_overrides")
