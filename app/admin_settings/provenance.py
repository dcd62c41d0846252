"""Where an administration went and where it came from, read from the provenance that
``landing`` writes as an administration lands.

The receiving office's copy was taken over ("Overgenomen van Kantoor Noord op …") or
imported from a migration file; the offering office's copy, the landed one's source,
was handed over ("Overgedragen aan Kantoor Zuid op …"). A client that came back has
both. The caller has already scoped the administrations to its office.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import aliased

from app.admin_settings.models import Administration, Environment, Provenance, ProvenanceOrigin
from app.extensions import db

OUTGOING = "outgoing"  # this office handed the administration over
INCOMING = "incoming"  # this office took it over with a transfer code
IMPORTED = "imported"  # this office imported it from a migration file


@dataclass(frozen=True)
class Move:
    direction: str
    office_name: str  # the other office
    office_id: int | None  # None for a migration file's office, which is not on the service
    at: datetime
    transfer_id: int | None = None

    @property
    def office(self) -> dict:
        return {"id": self.office_id, "name": self.office_name}


def moves_of(administration_ids: Iterable[int]) -> dict[int, list[Move]]:
    """Each administration's moves, newest first, in one query."""
    ids = list(administration_ids)
    moves: dict[int, list[Move]] = {i: [] for i in ids}
    if not ids:
        return moves
    landed = aliased(Administration)
    rows = db.session.execute(
        select(Provenance, Environment.id, Environment.name)
        .join(landed, landed.id == Provenance.administration_id)
        .join(Environment, Environment.id == landed.environment_id)
        .where(
            or_(
                Provenance.administration_id.in_(ids),
                Provenance.source_administration_id.in_(ids),
            )
        )
    )
    for record, landed_in_id, landed_in_name in rows:
        if record.administration_id in moves:
            imported = record.origin is ProvenanceOrigin.MIGRATION_FILE
            moves[record.administration_id].append(
                Move(
                    IMPORTED if imported else INCOMING,
                    record.source_environment_name,
                    record.source_environment_id,
                    record.migrated_at,
                    record.transfer_id,
                )
            )
        if record.source_administration_id in moves:
            moves[record.source_administration_id].append(
                Move(OUTGOING, landed_in_name, landed_in_id, record.migrated_at, record.transfer_id)
            )
    for found in moves.values():
        found.sort(key=lambda m: m.at, reverse=True)
    return moves
