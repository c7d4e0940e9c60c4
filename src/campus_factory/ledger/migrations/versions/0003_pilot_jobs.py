"""Jobs that ran on pilots (accounting), and operator controls: site overrides and requests.

* ``pilot_jobs``: one row per job execution on a pilot (a job evicted and restarted on the same
  pilot is two rows). Filled by the pilot/pool integration; accounting derives core-hours *used*
  from it (``ledger.accounting``).
* ``site_controls``: an operator's pause (and drain) of a site, per factory, kept across restarts
  (the scale floor/ceiling live in 0002's ``site_overrides``).
* ``operator_requests``: actions the API queued for the loop (drain a pilot), with their outcome.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pilot_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pilot_id", sa.String(128), sa.ForeignKey("pilots.pilot_id"), nullable=False),
        sa.Column("job_id", sa.String(256), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("cpus", sa.Integer, nullable=False),
        sa.UniqueConstraint("pilot_id", "job_id", "started_at", name="uq_pilot_jobs_run"),
    )
    op.create_index("ix_pilot_jobs_pilot_id", "pilot_jobs", ["pilot_id"])
    op.create_index("ix_pilot_jobs_started_at", "pilot_jobs", ["started_at"])
    op.create_table(
        "site_controls",
        sa.Column("factory", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("draining", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "operator_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("factory", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("done_at", sa.Float, nullable=True),
        sa.Column("result", sa.Text, nullable=False),
    )
    op.create_index("ix_operator_requests_pending", "operator_requests", ["factory", "done_at"])


def downgrade() -> None:
    op.drop_table("operator_requests")
    op.drop_table("site_controls")
    op.drop_table("pilot_jobs")
