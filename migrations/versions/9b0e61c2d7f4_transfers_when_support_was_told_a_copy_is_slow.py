"""transfers: when support was told that the copy takes longer than usual

Revision ID: 9b0e61c2d7f4
Revises: 9b3e5d21c4a7
Create Date: 2026-12-01 16:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9b0e61c2d7f4'
down_revision = '9b3e5d21c4a7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slow_reported_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_column('slow_reported_at')
