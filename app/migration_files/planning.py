"""The dry run: what importing a checked package into an environment would do, before
anything is written. Reads the package (``reader``) and the environment, never writes
documents or administrations; the result is the import's report and its items.

An administration of the file is matched to the environment by its package's target
connection and its code; a document to an administration's documents by its file's
hash. What matches with the same metadata is *already present* (importing the same file
again adds nothing); what matches with other metadata is a *conflict*, which the
importer skips or overwrites when confirming.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from app.admin_settings.models import Administration, Connection, Document, Environment, Plan
from app.errors import N_, ServiceError
from app.extensions import db
from app.migration_files.format import Scope
from app.migration_files.reader import AdministrationRow, DocumentRow, Package, Problem

MAX_LISTED = 1000  # conflicts and errors kept in a report; more are counted

# What happens to one document, in the report and the result CSV.
NEW, PRESENT, CONFLICT = "new", "already_present", "conflict"


def require_premium(environment: Environment) -> None:
    if environment.plan is not Plan.PREMIUM:
        raise ServiceError(
            "environment",
            N_(
                "Only an environment with the premium plan can import administrations. "
                "Ask support to change the plan of %(name)s."
            ),
            name=environment.name,
        )


def connections_by_package(environment_id: int) -> dict[str, list[Connection]]:
    found: dict[str, list[Connection]] = defaultdict(list)
    for connection in db.session.scalars(
        select(Connection)
        .where(Connection.environment_id == environment_id)
        .order_by(Connection.name, Connection.id)
    ):
        found[connection.package.value].append(connection)
    return found


def resolve_connections(environment_id: int, chosen: dict[str, int] | None) -> dict[str, int]:
    """The target connection per package: the chosen one (it must be this environment's
    and of that package), else the environment's first of that package."""
    available = connections_by_package(environment_id)
    result = {package: found[0].id for package, found in available.items()}
    for package, connection_id in (chosen or {}).items():
        if not any(c.id == connection_id for c in available.get(package, [])):
            raise ServiceError(
                "connection_id", N_("Choose one of your own connections for each package.")
            )
        result[package] = connection_id
    return result


@dataclass
class DocumentPlan:
    row: DocumentRow
    outcome: str  # NEW, PRESENT or CONFLICT
    existing_id: int | None = None


@dataclass
class AdministrationPlan:
    row: AdministrationRow
    connection_id: int | None
    existing_id: int | None  # an administration with this code under the connection
    conflict: bool  # exists with another name or contact address
    documents: list[DocumentPlan] = field(default_factory=list)


@dataclass
class ImportPlan:
    administrations: list[AdministrationPlan]
    problems: list[dict]

    def counts(self) -> dict[str, int]:
        docs = [d for a in self.administrations for d in a.documents]
        return {
            "administrations": len(self.administrations),
            "new_administrations": sum(a.existing_id is None for a in self.administrations),
            "documents": len(docs),
            "new_documents": sum(d.outcome == NEW for d in docs),
            "already_present": sum(d.outcome == PRESENT for d in docs),
            "conflicts": sum(a.conflict for a in self.administrations)
            + sum(d.outcome == CONFLICT for d in docs),
            "errors": len(self.problems),
        }

    def conflicts(self) -> list[dict]:
        listed: list[dict] = []
        for a in self.administrations:
            if a.conflict:
                listed.append(
                    {
                        "kind": "administration",
                        "package": a.row.package.value,
                        "administration_code": a.row.code,
                        "name": a.row.name,
                        "line": a.row.line,
                        "file": "data/administrations.csv",
                    }
                )
            for d in a.documents:
                if d.outcome == CONFLICT:
                    listed.append(
                        {
                            "kind": "document",
                            "package": a.row.package.value,
                            "administration_code": a.row.code,
                            "name": d.row.filename,
                            "line": d.row.line,
                            "file": "data/documents.csv",
                        }
                    )
        return listed[:MAX_LISTED]


def problem_dict(problem: Problem) -> dict:
    return {
        "file": problem.file,
        "line": problem.line,
        "field": problem.field,
        "message": problem.message,
        "params": problem.params,
    }


def _same_document(existing: Document, row: DocumentRow) -> bool:
    return (
        existing.filename == row.filename
        and existing.kind == row.kind
        and (existing.counterparty or None) == (row.counterparty or None)
        and existing.amount == row.amount
        and existing.invoice_date == row.invoice_date
        and (row.status is None or existing.status == row.status)
        and existing.booked_year == row.booked_year
        and existing.booked_period == row.booked_period
    )


class Refusal(Exception):
    """An administration of the file cannot be imported (a problem for the report)."""

    def __init__(self, problem: dict) -> None:
        super().__init__(problem["message"] % problem["params"] if problem["params"] else "")
        self.problem = problem


def _problem(file: str, line: int | None, field_: str | None, message: str, **params) -> dict:
    return {"file": file, "line": line, "field": field_, "message": message, "params": params}


def plan_administration(
    row: AdministrationRow,
    documents: list[DocumentRow],
    import_type: Scope,
    connections: dict[str, int],
) -> AdministrationPlan:
    """What importing one administration of the file (with its documents) would do now;
    ``Refusal`` when it cannot be imported. Used by the dry run and again, under the
    write lock, as each administration lands."""
    connection_id = connections.get(row.package.value)
    if connection_id is None:
        raise Refusal(
            _problem(
                "data/administrations.csv",
                row.line,
                "package",
                N_(
                    "Your environment has no %(package)s connection; add one under "
                    "Settings › Connections first."
                ),
                package=row.package.label,
            )
        )
    existing = db.session.scalars(
        select(Administration).where(
            Administration.connection_id == connection_id,
            Administration.code == row.code,
            Administration.holds_its_code,  # a migrated one moved away: not this client here
        )
    ).first()
    if import_type is Scope.DOCUMENTS and existing is None:
        raise Refusal(
            _problem(
                "data/administrations.csv",
                row.line,
                "administration_code",
                N_(
                    "No administration %(code)s has been imported into your %(package)s "
                    "connection yet: import the administrations first."
                ),
                code=row.code,
                package=row.package.label,
            )
        )
    conflict = (
        existing is not None
        and import_type is not Scope.DOCUMENTS
        and (existing.name != row.name or existing.contact_email != row.contact_email)
    )
    admin_plan = AdministrationPlan(row, connection_id, existing.id if existing else None, conflict)
    present: dict[str, list[Document]] = defaultdict(list)
    if existing is not None and documents:
        keys = sorted({r.sha256 for r in documents})
        for start in range(0, len(keys), 500):  # bounded IN lists
            for document in db.session.scalars(
                select(Document).where(
                    Document.administration_id == existing.id,
                    Document.blob_key.in_(keys[start : start + 500]),
                )
            ):
                present[document.blob_key].append(document)
    for doc in documents:
        matches = present.get(doc.sha256, [])
        if not matches:
            admin_plan.documents.append(DocumentPlan(doc, NEW))
        elif any(_same_document(m, doc) for m in matches):
            admin_plan.documents.append(DocumentPlan(doc, PRESENT, matches[0].id))
        else:
            admin_plan.documents.append(DocumentPlan(doc, CONFLICT, matches[0].id))
    return admin_plan


def documents_by_administration(
    package: Package, import_type: Scope
) -> dict[tuple[str, str], list[DocumentRow]]:
    found: dict[tuple[str, str], list[DocumentRow]] = defaultdict(list)
    if import_type is not Scope.ADMINISTRATIONS:
        for row in package.documents:
            found[(row.package.value, row.administration_code)].append(row)
    return found


def plan(
    package: Package, environment: Environment, import_type: Scope, connections: dict[str, int]
) -> ImportPlan:
    """What importing ``package`` as ``import_type`` into ``environment`` would do."""
    problems = [problem_dict(p) for p in package.problems]
    if not package.bag_valid:
        return ImportPlan([], problems)
    if import_type is not Scope.ADMINISTRATIONS and package.scope is Scope.ADMINISTRATIONS:
        problems.append(
            _problem(
                "bag-info.txt",
                None,
                "Overdracht-Scope",
                N_("This file holds administrations only; import it as administrations only."),
            )
        )
    if import_type is Scope.DOCUMENTS and not package.documents:
        problems.append(
            _problem("data/documents.csv", None, None, N_("This file holds no documents."))
        )
    by_admin = documents_by_administration(package, import_type)
    plans: list[AdministrationPlan] = []
    for row in package.administrations:
        try:
            plans.append(
                plan_administration(
                    row, by_admin.get((row.package.value, row.code), []), import_type, connections
                )
            )
        except Refusal as refusal:
            problems.append(refusal.problem)
    return ImportPlan(plans, problems[:MAX_LISTED])
