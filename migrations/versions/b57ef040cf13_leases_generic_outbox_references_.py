"""Leases, generic outbox references, provenance with its origin

The outbox refers to what a mail is about by kind and id instead of a transfer id;
leased work (outbox messages, transfer items) records who holds the lease; provenance
says where an administration came from (a transfer, or next a migration file). Rows
that exist keep their meaning: transfer ids become ("transfer", id) references, the
relay's lock becomes its lease, and every existing provenance came from a transfer.
An offer also counts how often its expiry was extended.

Revision ID: b57ef040cf13
Revises: f395a49f8cfa
Create Date: 2026-12-01 11:00:25.019975

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b57ef040cf13'
down_revision = 'f395a49f8cfa'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ref_type', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('ref_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=80), nullable=True))
        batch_op.alter_column('locked_until', new_column_name='lease_until')
    op.execute(
        "UPDATE outbox_messages SET ref_type = 'transfer', ref_id = transfer_id "
        "WHERE transfer_id IS NOT NULL"
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_messages_transfer_id'))
        batch_op.create_index('ix_outbox_messages_ref', ['ref_type', 'ref_id'], unique=False)
        batch_op.drop_column('transfer_id')

    with op.batch_alter_table('provenance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.Enum('transfer', 'migration_file', name='provenanceorigin', native_enum=False, length=20), nullable=False, server_default='transfer'))
        batch_op.alter_column('transfer_item_id', existing_type=sa.INTEGER(), nullable=True)
        batch_op.alter_column('transfer_id', existing_type=sa.INTEGER(), nullable=True)
    with op.batch_alter_table('provenance', schema=None) as batch_op:
        batch_op.alter_column('origin', server_default=None)

    with op.batch_alter_table('transfer_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=80), nullable=True))

    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extensions', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.alter_column('extensions', server_default=None)


def downgrade():
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_column('extensions')

    with op.batch_alter_table('transfer_items', schema=None) as batch_op:
        batch_op.drop_column('lease_owner')

    op.execute("DELETE FROM provenance WHERE transfer_item_id IS NULL OR transfer_id IS NULL")
    with op.batch_alter_table('provenance', schema=None) as batch_op:
        batch_op.alter_column('transfer_id', existing_type=sa.INTEGER(), nullable=False)
        batch_op.alter_column('transfer_item_id', existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column('origin')

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transfer_id', sa.INTEGER(), nullable=True))
    op.execute("UPDATE outbox_messages SET transfer_id = ref_id WHERE ref_type = 'transfer'")
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_ref')
        batch_op.create_index(batch_op.f('ix_outbox_messages_transfer_id'), ['transfer_id'], unique=False)
        batch_op.alter_column('lease_until', new_column_name='locked_until')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('ref_id')
        batch_op.drop_column('ref_type')
