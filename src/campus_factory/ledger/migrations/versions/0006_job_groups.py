"""The job group of each job run, so runtimes are learned per group.

* ``pilot_jobs.job_group``: the ``JobGroup.group_id`` the job was idle in when the loop last saw
  it idle (NULL when it never was: a job that started before the factory read its schedd);
* ``pilot_jobs (job_group, ended_at)``: a group's most recent ended runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pilot_jobs", sa.Column("job_group", sa.String(64), nullable=True))
    op.create_index("ix_pilot_jobs_group_ended", "pilot_jobs", ["job_group", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_pilot_jobs_group_ended", "pilot_jobs")
    with op.batch_alter_table("pilot_jobs") as batch:
        batch.drop_column("job_group")
