"""Indexes for what every cycle and every pilot list asks, so their cost does not grow with history.

* ``pilots (factory, site, created_at)``: a site's most recent pilots (site health, the newest-first
  pilot lists of one site);
* ``pilots (factory, created_at)``: the newest-first pilot lists (``pilot list``, the API), paged;
* ``pilots (factory, ended_at)``: pilots ended since a time (the spend of the last day);
* ``pilot_jobs (ended_at)``: the runs still open.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_pilots_factory_site_created", "pilots", ["factory", "site", "created_at"])
    op.create_index("ix_pilots_factory_created", "pilots", ["factory", "created_at"])
    op.create_index("ix_pilots_factory_ended", "pilots", ["factory", "ended_at"])
    op.create_index("ix_pilot_jobs_ended_at", "pilot_jobs", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_pilot_jobs_ended_at", "pilot_jobs")
    op.drop_index("ix_pilots_factory_ended", "pilots")
    op.drop_index("ix_pilots_factory_created", "pilots")
    op.drop_index("ix_pilots_factory_site_created", "pilots")
