"""transfers: code groups and recipients' addresses searchable in the overview

Revision ID: 9b3e5d21c4a7
Revises: 6c1d5043a23c
Create Date: 2026-12-01 17:10:00.000000

A keyed digest of each group of every offer's code (``transfer_code_groups``), and the
addresses an offer went to appended to its items' (and inbox rows') search text. Both
are filled in for the offers already made; the digests need the server's secret key,
so this runs in the app's context as ``flask db upgrade`` does.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9b3e5d21c4a7'
down_revision = '6c1d5043a23c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('transfer_code_groups',
    sa.Column('transfer_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_transfer_code_groups_transfer_id_transfers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('transfer_id', 'digest', name=op.f('pk_transfer_code_groups'))
    )
    with op.batch_alter_table('transfer_code_groups', schema=None) as batch_op:
        batch_op.create_index('ix_transfer_code_groups_digest', ['digest'], unique=False)

    _fill_in_existing_offers()


def _fill_in_existing_offers():
    from app.transfers import codes, domain

    bind = op.get_bind()
    transfers = bind.execute(sa.text("SELECT id, code_nonce FROM transfers")).all()
    groups = [
        {"transfer_id": transfer_id, "digest": digest}
        for transfer_id, nonce in transfers
        for digest in set(codes.group_digests(domain.code_groups(codes.code_of_nonce(nonce))))
    ]
    if groups:
        bind.execute(
            sa.text("INSERT INTO transfer_code_groups (transfer_id, digest) VALUES (:transfer_id, :digest)"),
            groups,
        )

    recipients = {}
    for transfer_id, email in bind.execute(
        sa.text("SELECT transfer_id, email FROM transfer_recipients ORDER BY id")
    ):
        recipients.setdefault(transfer_id, []).append(email.lower())
    items = bind.execute(
        sa.text("SELECT id, transfer_id, search_text FROM transfer_items")
    ).all()
    updates = [
        {"id": item_id, "search_text": "\n".join([text, *recipients[transfer_id]])[:700]}
        for item_id, transfer_id, text in items
        if recipients.get(transfer_id)
    ]
    if updates:
        bind.execute(
            sa.text("UPDATE transfer_items SET search_text = :search_text WHERE id = :id"), updates
        )
        bind.execute(
            sa.text(
                "UPDATE transfer_inbox SET search_text = :search_text "
                "WHERE transfer_item_id = :id"
            ),
            updates,
        )


def downgrade():
    # The addresses stay in the search text: one more thing a search finds, nothing lost.
    with op.batch_alter_table('transfer_code_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_transfer_code_groups_digest')

    op.drop_table('transfer_code_groups')
