"""Users: a session version, so logging out ends every session of that user

A login session carries the version of its user; logging out and "sign out
everywhere" raise it, and a session with another version is refused.

Revision ID: 5434e72d6da5
Revises: b57ef040cf13
Create Date: 2026-12-01 12:20:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5434e72d6da5'
down_revision = 'b57ef040cf13'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('session_version', sa.Integer(), nullable=False, server_default='1')
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
