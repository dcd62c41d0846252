"""Demo data for ``flask demo``: three offices, their logins, administrations and documents.

Layout of the demo (the same every run: a fixed random seed drives all choices)::

    Kantoor Noord  NOORD  premium   the office that moves administrations out
      Exact Online  (Exact Online)
        1001  Bakkerij De Korenschoof B.V.        2,000 docs  clean (inactive workflow)
        1002  Van Dijk Installatietechniek          400 docs  clean
        1003  Huisartsenpraktijk Het Anker          300 docs  blocker: undecided documents
        1004  Transportbedrijf Hendriks & Zn.       250 docs  blocker: active workflow
        1005  Bloemenhuis Het Zonnetje              200 docs  all three blockers
      Twinfield     (Twinfield)
        2001  Tandartspraktijk Glimlach Noord        50 docs  clean
        2002  Restaurant De Gouden Leeuw            300 docs  clean (inactive workflow)
        2003  Schildersbedrijf Jansen V.O.F.        150 docs  blocker: authorizer in a flow
        2004  Stichting Buurtwerk Noord             250 docs  clean
      (and under Exact Online, already in transfers to Zuid that support must look at)
        1006  Autobedrijf Wolters                   120 docs  claimed, copy stuck (hung worker)
        1007  Kinderopvang Het Nest                  80 docs  claimed, copy failed (retryable)
        1008  Dierenkliniek De Hoefslag              60 docs  moved to Zuid 9 days ago: migrated
                                                             (read-only), kept here
    Kantoor Zuid   ZUID   premium   a receiving office
      Exact Online  (Exact Online)
        1002  Garage Peters B.V.                     50 docs  clean  (same code as Noord 1002)
        3001  Kapsalon Knip & Zo                     50 docs  clean
        1008  Dierenkliniek De Hoefslag              60 docs  arrived from Noord (a returning
                                                             client: it can be moved back)
    Kantoor West   WEST   standard  a receiving office on the smaller plan
      Exact Online  (Exact Online)
        5001  Camping De Duinrand                    50 docs  clean

"Clean" means every document is approved or rejected, no workflow is active and no
authorization flow has a step. Zuid's 1002 deliberately shares its code with Noord's
1002 under the same package, so moving Van Dijk Installatietechniek from Noord into
Zuid's Exact Online connection trips the duplicate guard (one code per connection).

Every document has a real one-page PDF (generated below, unique per document, so every
blob is distinct) in the blob store. Decided documents are booked in the year and
period of their invoice date (2022-2025, so there are several archive years); the
undecided ones are the most recent of their administration.

Logins: see ``LOGINS``. With ``DEMO_PASSWORD`` set (development, testing) everyone has
that password; otherwise each login gets a random one, shown only in the summary that
``seed_demo`` returns when it first seeds.

Transfers: Noord has offered 1006 and 1007 to super@zuid.example and Zuid has claimed
both; the copy of 1006 hangs (a worker holds its lease for a day, for two hours now) and
the copy of 1007 failed on a lost database connection. Support sees both in the stuck
view, can revoke the first and retry the second. Nine days ago Noord moved 1008 to
Zuid, and that transfer completed: Zuid has it active, Noord keeps its read-only
(migrated) copy, which does not hold the code, so Zuid can offer it back to
super@noord.example and Noord can claim it into the same Exact Online connection (a
returning client). They go through the real services with their own times, so their
mails are in the outbox (``/dev/mail``) and their steps in the audit trail, at the
times the transfers show.

Migration file: ``flask demo`` also writes ``instance/migratiebestand-kantoor-oost.zip``
(``write_demo_migration_file``), a file from a fictional desktop office, "Kantoor Oost,
desktoparchief": three Exact Online administrations (4001-4003) with 36 one-page PDFs,
some decided (they arrive locked), some without a status. Zuid can import it; West, on
the standard plan, is told it cannot.

``seed_demo`` commits the offices before it makes the transfers (the claim service
starts write transactions of its own); the caller commits the rest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import func, insert, select, update

from app.admin_settings.domain import inbound_email
from app.admin_settings.models import (
    Administration,
    AuthorizationFlow,
    AuthorizationStep,
    Connection,
    Document,
    DocumentKind,
    DocumentStatus,
    Environment,
    Package,
    Plan,
    Workflow,
)
from app.auth.models import Role, User
from app.auth.services import create_user
from app.db import utcnow
from app.extensions import db
from app.migration_files import format as fmt
from app.migration_files.bag import PayloadEntry, write_bag
from app.storage import blob_store

if TYPE_CHECKING:
    from app.transfers.models import Transfer

SEED = 20240601
FIRST_INVOICE_DATE = date(2022, 1, 3)
LAST_INVOICE_DATE = date(2025, 10, 31)
MARKER_OFFICE_CODE = "NOORD"


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class DemoLogin:
    email: str
    name: str
    role: Role
    office_code: str | None  # None for support staff, who belong to no environment


LOGINS: tuple[DemoLogin, ...] = (
    DemoLogin("super@noord.example", "Sanne Noordhuis", Role.SUPERUSER, "NOORD"),
    DemoLogin("user@noord.example", "Mark de Boer", Role.USER, "NOORD"),
    DemoLogin("autorisator@noord.example", "J. de Vries", Role.AUTHORIZER, "NOORD"),
    DemoLogin("super@zuid.example", "Eva Zuidema", Role.SUPERUSER, "ZUID"),
    # A colleague: one person's failed code entries never lock the other out.
    DemoLogin("tweede@zuid.example", "Ruben Zuidhof", Role.SUPERUSER, "ZUID"),
    DemoLogin("super@west.example", "Thomas Westerveld", Role.SUPERUSER, "WEST"),
    DemoLogin("support@overdracht.example", "Overdracht Support", Role.SUPPORT, None),
)

# What stops an administration from moving, per the checklist.
CLEAN = "clean"
UNDECIDED = "undecided"  # only undecided (pending) documents
WORKFLOW = "workflow"  # only an active workflow
AUTHORIZATION = "authorization"  # only an authorization flow with a step
ALL_BLOCKERS = "all"


@dataclass(frozen=True)
class DemoAdministration:
    connection: str  # name of the connection in its environment
    code: str
    name: str
    mail_domain: str  # the client's own domain, for the contact address
    documents: int
    profile: str = CLEAN
    inactive_workflow: bool = False
    suppliers: tuple[str, ...] = ()  # sector-specific, mixed with COMMON_SUPPLIERS


@dataclass(frozen=True)
class DemoEnvironment:
    name: str
    office_code: str
    plan: Plan
    connections: tuple[tuple[Package, str], ...]
    administrations: tuple[DemoAdministration, ...]


ENVIRONMENTS: tuple[DemoEnvironment, ...] = (
    DemoEnvironment(
        "Kantoor Noord",
        "NOORD",
        Plan.PREMIUM,
        ((Package.EXACT_ONLINE, "Exact Online"), (Package.TWINFIELD, "Twinfield")),
        (
            DemoAdministration(
                "Exact Online",
                "1001",
                "Bakkerij De Korenschoof B.V.",
                "korenschoof.example",
                2000,
                inactive_workflow=True,
                suppliers=(
                    "Meelfabriek De Hoop",
                    "Zuivelhandel Friesland",
                    "Bakkersland Groothandel",
                ),
            ),
            DemoAdministration(
                "Exact Online",
                "1002",
                "Van Dijk Installatietechniek",
                "vandijk-installatie.example",
                400,
                suppliers=("Technische Unie", "Rexel Nederland", "Wasco", "Van Marcke"),
            ),
            DemoAdministration(
                "Exact Online",
                "1003",
                "Huisartsenpraktijk Het Anker",
                "hetanker-huisartsen.example",
                300,
                profile=UNDECIDED,
                suppliers=("Mediq Nederland", "Medireva", "Praktijkinrichting Noord"),
            ),
            DemoAdministration(
                "Exact Online",
                "1004",
                "Transportbedrijf Hendriks & Zn.",
                "hendriks-transport.example",
                250,
                profile=WORKFLOW,
                suppliers=("Tankstation De Vaart", "DAF Dealer Noord", "Banden Kuipers"),
            ),
            DemoAdministration(
                "Exact Online",
                "1005",
                "Bloemenhuis Het Zonnetje",
                "hetzonnetje.example",
                200,
                profile=ALL_BLOCKERS,
                suppliers=("Royal FloraHolland", "Potgrond Van der Meer", "Verpakkingen Smit"),
            ),
            # Two more clean ones, already in transfers that support has to look at.
            DemoAdministration(
                "Exact Online",
                "1006",
                "Autobedrijf Wolters",
                "wolters-auto.example",
                120,
                suppliers=("Autoparts Noord", "Bovag Onderdelen", "Shell Nederland"),
            ),
            DemoAdministration(
                "Exact Online",
                "1007",
                "Kinderopvang Het Nest",
                "hetnest.example",
                80,
                suppliers=("Speelgoedgroothandel Bos", "Hanos Groothandel"),
            ),
            # Moved to Zuid (completed): the returning client that Zuid can move back.
            DemoAdministration(
                "Exact Online",
                "1008",
                "Dierenkliniek De Hoefslag",
                "dehoefslag.example",
                60,
                suppliers=("Dierenartsengroothandel Alfasan", "Paardenvoer Havens"),
            ),
            DemoAdministration(
                "Twinfield",
                "2001",
                "Tandartspraktijk Glimlach Noord",
                "glimlach-noord.example",
                50,
                suppliers=("Henry Schein Dental", "Tandtechnisch Lab Bosch"),
            ),
            DemoAdministration(
                "Twinfield",
                "2002",
                "Restaurant De Gouden Leeuw",
                "goudenleeuw.example",
                300,
                inactive_workflow=True,
                suppliers=(
                    "Hanos Groothandel",
                    "Sligro",
                    "Wijnkoperij Verbeek",
                    "Vishandel Noordzee",
                ),
            ),
            DemoAdministration(
                "Twinfield",
                "2003",
                "Schildersbedrijf Jansen V.O.F.",
                "jansen-schilders.example",
                150,
                profile=AUTHORIZATION,
                suppliers=("Sikkens Verkooppunt", "Boels Verhuur", "Bouwmaat"),
            ),
            DemoAdministration(
                "Twinfield",
                "2004",
                "Stichting Buurtwerk Noord",
                "buurtwerk-noord.example",
                250,
                suppliers=("Gemeente Groningen", "Drukkerij Scholma", "Speelgoedgroothandel Bos"),
            ),
        ),
    ),
    DemoEnvironment(
        "Kantoor Zuid",
        "ZUID",
        Plan.PREMIUM,
        ((Package.EXACT_ONLINE, "Exact Online"),),
        (
            # Same code as Noord's "1002 Van Dijk Installatietechniek" under Exact Online:
            # moving that one into this connection must be stopped by the duplicate guard.
            DemoAdministration(
                "Exact Online",
                "1002",
                "Garage Peters B.V.",
                "garagepeters.example",
                50,
                suppliers=("Autoparts Zuid", "Bovag Onderdelen"),
            ),
            DemoAdministration(
                "Exact Online",
                "3001",
                "Kapsalon Knip & Zo",
                "knipenzo.example",
                50,
                suppliers=("Kappersgroothandel Haarmode", "L'Oréal Professionnel"),
            ),
        ),
    ),
    DemoEnvironment(
        "Kantoor West",
        "WEST",
        Plan.STANDARD,
        ((Package.EXACT_ONLINE, "Exact Online"),),
        (
            DemoAdministration(
                "Exact Online",
                "5001",
                "Camping De Duinrand",
                "duinrand.example",
                50,
                suppliers=("Recreatiegroothandel Kust", "Zwembadtechniek Haarlem"),
            ),
        ),
    ),
)

COMMON_SUPPLIERS: tuple[str, ...] = (
    "KPN Zakelijk",
    "Vattenfall",
    "Eneco Zakelijk",
    "Ziggo Zakelijk",
    "Coolblue Zakelijk",
    "Bol.com Zakelijk",
    "Makro Nederland",
    "Gamma Zakelijk",
    "Staples Nederland",
    "Interpolis",
    "Achmea Schadeverzekeringen",
    "Rabobank",
    "ING Bank",
    "Shell Nederland",
    "NS Zakelijk",
    "PostNL",
    "Vitens",
    "Accountantskantoor De Linde",
    "Schoonmaakbedrijf Van der Wal",
    "Drukkerij Hoekstra",
)

RECEIPT_SUPPLIERS: tuple[str, ...] = (
    "Albert Heijn",
    "Jumbo",
    "Action",
    "HEMA",
    "Shell Nederland",
    "BP Tankstation",
    "Q-Park",
    "Praxis",
    "Hubo",
    "Kruidvat",
)

CUSTOMERS: tuple[str, ...] = (
    "Gemeente Assen",
    "Woningcorporatie Lefier",
    "Hotel Prinsenhof",
    "Basisschool De Regenboog",
    "Zorggroep Noorderbreedte",
    "Familie Bakker",
    "Dhr. P. Mulder",
    "Mevr. A. Smit-Visser",
    "Sportvereniging Be Quick",
    "Van der Berg Vastgoed B.V.",
)

OTHER_SENDERS: tuple[str, ...] = (
    "Belastingdienst",
    "Kamer van Koophandel",
    "Gemeente Groningen",
    "UWV",
    "Waterschap Noorderzijlvest",
)

OTHER_SUBJECTS: tuple[str, ...] = (
    "Aanslag",
    "Jaaroverzicht",
    "Beschikking",
    "Herinnering",
    "Mededeling",
)


# --------------------------------------------------------------------------- seeding


def seed_demo(*, reset: bool = False, echo: Callable[[str], object] = print) -> str:
    """Seed the demo (see the module docstring) and return a summary with the logins.

    Idempotent: when the demo is already there and ``reset`` is false nothing changes.
    ``reset`` deletes every row of every table first. Flushes; the caller commits.
    """
    started = time.perf_counter()
    demo_password: str | None = current_app.config.get("DEMO_PASSWORD") or None

    if reset:
        echo("Deleting all data ...")
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.flush()
        # Objects still in the session stand for rows that are gone now.
        db.session.expunge_all()
    elif _demo_exists():
        return _already_there_summary(demo_password)
    else:
        _refuse_partial_demo()

    rng = random.Random(SEED)
    environments: dict[str, Environment] = {}
    for spec in ENVIRONMENTS:
        env = Environment(name=spec.name, office_code=spec.office_code, plan=spec.plan)
        db.session.add(env)
        environments[spec.office_code] = env
    db.session.flush()

    echo("Creating logins ...")
    users: dict[str, User] = {}
    passwords: dict[str, str] = {}
    for login in LOGINS:
        password = demo_password or secrets.token_urlsafe(12)
        env_id = environments[login.office_code].id if login.office_code else None
        users[login.email] = create_user(
            email=login.email,
            name=login.name,
            role=login.role,
            password=password,
            environment_id=env_id,
        )
        passwords[login.email] = password

    mail_domain = current_app.config["MAIL_DOMAIN"]
    store = blob_store()
    totals = {"administrations": 0, "documents": 0}
    for spec in ENVIRONMENTS:
        env = environments[spec.office_code]
        echo(f"Seeding {spec.name} ...")
        uploaders, deciders = _people(spec.office_code, users)
        connections: dict[str, Connection] = {}
        for package, name in spec.connections:
            connection = Connection(environment_id=env.id, package=package, name=name)
            db.session.add(connection)
            connections[name] = connection
        db.session.flush()

        for admin_spec in spec.administrations:
            administration = Administration(
                environment_id=env.id,
                connection_id=connections[admin_spec.connection].id,
                name=admin_spec.name,
                code=admin_spec.code,
                contact_email=f"administratie@{admin_spec.mail_domain}",
                inbound_email=inbound_email(spec.office_code, admin_spec.code, mail_domain),
            )
            db.session.add(administration)
            db.session.flush()
            _add_blockers(administration, admin_spec, users)
            rows = _document_rows(
                rng,
                office_code=spec.office_code,
                administration=administration,
                spec=admin_spec,
                uploaders=uploaders,
                deciders=deciders,
                put=store.put_bytes,
            )
            db.session.execute(insert(Document), rows)
            totals["administrations"] += 1
            totals["documents"] += len(rows)
    db.session.flush()
    echo("Making transfers for support ...")
    _seed_transfers(users)
    db.session.flush()

    seconds = time.perf_counter() - started
    head = (
        f"Demo seeded in {seconds:.1f} s: {len(ENVIRONMENTS)} environments, "
        f"{totals['administrations']} administrations, {totals['documents']:,} documents "
        "with PDF files."
    )
    if demo_password:
        note = f"Every login has the password {demo_password!r} (DEMO_PASSWORD)."
    else:
        note = "Passwords are random and shown only now; keep them somewhere safe."
    logins = [(login, passwords[login.email]) for login in LOGINS]
    return "\n".join([head, note, "", *_login_lines(logins)])


def _seed_transfers(users: dict[str, User]) -> None:
    """Transfers from Noord to Zuid: a completed one (the returning client), a stuck
    and a failed one (see the module docstring)."""
    from app.transfers import copying
    from app.transfers.models import ItemState, TransferItem

    db.session.commit()  # the claim service begins write transactions of its own
    now = utcnow()
    noord, zuid = users["super@noord.example"], users["super@zuid.example"]

    # The returning client: offered nine days ago, claimed two hours later, copied.
    offered_at = now - timedelta(days=9)
    transfer = _offer_and_claim(noord, zuid, "1008", offered_at, offered_at + timedelta(hours=2))
    copied = copying.copy_item(transfer.items[0].id, now=offered_at + timedelta(hours=2, minutes=3))
    if copied is not copying.CopyOutcome.COPIED:
        raise RuntimeError(f"the demo copy of 1008 did not finish: {copied}")

    for code, hours_ago, stuck in (("1006", 3, True), ("1007", 5, False)):
        transfer = _offer_and_claim(
            noord,
            zuid,
            code,
            now - timedelta(hours=hours_ago),
            now - timedelta(hours=hours_ago - 1),
        )
        if stuck:  # a worker that took the copy two hours ago and hangs
            values = {
                "attempts": 1,
                "lease_owner": "demo-worker:0:hung",
                "lease_until": now + timedelta(days=1),
            }
        else:
            values = {
                "attempts": 5,
                "state": ItemState.FAILED,
                "last_error": "OperationalError: server closed the connection unexpectedly",
            }
        db.session.execute(
            update(TransferItem)
            .where(TransferItem.transfer_id == transfer.id)
            .values(updated_at=now - timedelta(hours=2), **values)
        )


def _offer_and_claim(
    noord: User, zuid: User, code: str, offered_at: datetime, claimed_at: datetime
) -> Transfer:
    """Noord offers its administration ``code`` to Zuid's superuser at ``offered_at``;
    Zuid claims it into its Exact Online connection at ``claimed_at``. Both committed."""
    from app.transfers import claims, offers

    administration = db.session.scalars(
        select(Administration).where(
            Administration.environment_id == noord.environment_id,
            Administration.code == code,
        )
    ).one()
    zuid_connection = db.session.scalars(
        select(Connection).where(Connection.environment_id == zuid.environment_id)
    ).first()
    transfer, transfer_code = offers.create_offer(
        noord,
        administration_ids=[administration.id],
        recipient_emails=[zuid.email],
        checklist_confirmed=True,
        accept_terms=True,
        origin="demo",
        now=offered_at,
    )
    db.session.commit()
    claims.submit_claim(
        zuid,
        transfer_code,
        [claims.Decision(transfer.items[0].id, "accept", zuid_connection.id)],
        accept_terms=True,
        origin="demo",
        now=claimed_at,
    )
    db.session.commit()
    return transfer


def _demo_exists() -> bool:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Environment)
            .where(Environment.office_code == MARKER_OFFICE_CODE)
        )
        > 0
    )


def _refuse_partial_demo() -> None:
    """Stop early, with a clear message, when unrelated rows would collide with the demo."""
    codes = [spec.office_code for spec in ENVIRONMENTS]
    emails = [login.email for login in LOGINS]
    clash = db.session.scalar(
        select(func.count()).select_from(Environment).where(Environment.office_code.in_(codes))
    ) or db.session.scalar(
        select(func.count()).select_from(User).where(func.lower(User.email).in_(emails))
    )
    if clash:
        raise RuntimeError(
            "Part of the demo (an office code or a demo e-mail address) already exists "
            "without Kantoor Noord; run `flask demo --reset` to start over."
        )


def _already_there_summary(demo_password: str | None) -> str:
    existing = set(
        db.session.scalars(select(User.email).where(User.email.in_([x.email for x in LOGINS])))
    )
    head = "The demo was already there; nothing changed (use --reset to seed it again)."
    if demo_password:
        note = f"Every demo login has the password {demo_password!r} (DEMO_PASSWORD)."
    else:
        note = "Passwords were printed when the demo was first seeded."
    logins = [(login, demo_password) for login in LOGINS if login.email in existing]
    return "\n".join([head, note, "", *_login_lines(logins)])


def _login_lines(rows: Sequence[tuple[DemoLogin, str | None]]) -> list[str]:
    environment_names = {spec.office_code: spec.name for spec in ENVIRONMENTS}
    lines = ["Demo logins:"]
    for login, password in rows:
        where = (
            f"{environment_names[login.office_code]} ({login.office_code})"
            if login.office_code
            else "no environment"
        )
        line = f"  {login.email:<28} {login.role.value:<11} {where:<22}"
        if password:
            line += f" password: {password}"
        lines.append(line.rstrip())
    return lines


def _people(office_code: str, users: dict[str, User]) -> tuple[list[User], list[User]]:
    """Who uploads and who decides documents in an environment."""
    if office_code == "NOORD":
        superuser = users["super@noord.example"]
        return (
            [users["user@noord.example"], superuser],
            [superuser, users["autorisator@noord.example"]],
        )
    superuser = users[f"super@{office_code.lower()}.example"]
    return [superuser], [superuser]


def _add_blockers(
    administration: Administration, spec: DemoAdministration, users: dict[str, User]
) -> None:
    env_id = administration.environment_id
    if spec.inactive_workflow:
        db.session.add(
            Workflow(
                environment_id=env_id,
                administration_id=administration.id,
                name="Oude goedkeuringsroute (gestopt)",
                active=False,
            )
        )
    if spec.profile in (WORKFLOW, ALL_BLOCKERS):
        db.session.add(
            Workflow(
                environment_id=env_id,
                administration_id=administration.id,
                name="Inkoopfacturen goedkeuren",
                active=True,
            )
        )
    if spec.profile in (AUTHORIZATION, ALL_BLOCKERS):
        flow = AuthorizationFlow(
            environment_id=env_id,
            administration_id=administration.id,
            name="Facturen boven € 1.000",
        )
        db.session.add(flow)
        db.session.flush()
        db.session.add(
            AuthorizationStep(
                environment_id=env_id,
                flow_id=flow.id,
                position=1,
                authorizer_id=users["autorisator@noord.example"].id,
            )
        )
    db.session.flush()


def _pending_count(spec: DemoAdministration) -> int:
    if spec.profile in (UNDECIDED, ALL_BLOCKERS):
        return max(5, spec.documents // 10)
    return 0


_KIND_WEIGHTS = (
    (DocumentKind.PURCHASE_INVOICE, 70),
    (DocumentKind.SALES_INVOICE, 15),
    (DocumentKind.RECEIPT, 10),
    (DocumentKind.OTHER, 5),
)
_FILENAME_PREFIX = {
    DocumentKind.PURCHASE_INVOICE: "factuur",
    DocumentKind.SALES_INVOICE: "verkoopfactuur",
    DocumentKind.RECEIPT: "bon",
    DocumentKind.OTHER: "document",
}
CENT = Decimal("0.01")


def _amount(rng: random.Random, kind: DocumentKind) -> Decimal:
    if kind is DocumentKind.RECEIPT:
        value = rng.uniform(2.5, 180)
    elif kind is DocumentKind.SALES_INVOICE:
        value = rng.lognormvariate(6.8, 0.9)
    elif kind is DocumentKind.OTHER:
        value = rng.lognormvariate(6.0, 1.3)
    else:
        value = rng.lognormvariate(5.6, 1.2)
    value = min(max(value, 1.0), 48_000.0)
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _moment(day: date, rng: random.Random) -> datetime:
    """A working-hours moment on ``day``, timezone-aware UTC."""
    return datetime(
        day.year, day.month, day.day, rng.randint(7, 16), rng.randint(0, 59), tzinfo=UTC
    )


def _document_rows(
    rng: random.Random,
    *,
    office_code: str,
    administration: Administration,
    spec: DemoAdministration,
    uploaders: list[User],
    deciders: list[User],
    put: Callable[[bytes], str],
) -> list[dict]:
    """Bulk-insert rows for one administration's documents, each with its PDF stored."""
    span = (LAST_INVOICE_DATE - FIRST_INVOICE_DATE).days
    dates = sorted(
        FIRST_INVOICE_DATE + timedelta(days=rng.randint(0, span)) for _ in range(spec.documents)
    )
    first_pending = spec.documents - _pending_count(spec)
    suppliers = spec.suppliers * 3 + COMMON_SUPPLIERS  # sector suppliers come up more often
    kinds = [kind for kind, _ in _KIND_WEIGHTS]
    weights = [weight for _, weight in _KIND_WEIGHTS]
    now = utcnow()
    numbers: dict[tuple[str, int], int] = {}
    rows: list[dict] = []

    for index, invoice_date in enumerate(dates):
        kind = rng.choices(kinds, weights)[0]
        prefix = _FILENAME_PREFIX[kind]
        numbers[(prefix, invoice_date.year)] = numbers.get((prefix, invoice_date.year), 0) + 1
        number = f"{invoice_date.year}-{numbers[(prefix, invoice_date.year)]:05d}"
        if kind is DocumentKind.SALES_INVOICE:
            counterparty = rng.choice(CUSTOMERS)
        elif kind is DocumentKind.RECEIPT:
            counterparty = rng.choice(RECEIPT_SUPPLIERS)
        elif kind is DocumentKind.OTHER:
            counterparty = rng.choice(OTHER_SENDERS)
        else:
            counterparty = rng.choice(suppliers)
        amount = _amount(rng, kind)
        reference = f"{office_code}-{spec.code}-{index + 1:05d}"
        subject = rng.choice(OTHER_SUBJECTS) if kind is DocumentKind.OTHER else ""

        pdf = demo_pdf(
            kind=kind,
            number=number,
            invoice_date=invoice_date,
            amount=amount,
            counterparty=counterparty,
            client=spec.name,
            client_email=f"administratie@{spec.mail_domain}",
            reference=reference,
            subject=subject,
        )
        uploader = rng.choice(uploaders)
        created_at = min(_moment(invoice_date + timedelta(days=rng.randint(0, 6)), rng), now)
        row = {
            "environment_id": administration.environment_id,
            "administration_id": administration.id,
            "blob_key": put(pdf),
            "size": len(pdf),
            "content_type": "application/pdf",
            "filename": f"{prefix}-{number}.pdf",
            "kind": kind,
            "counterparty": counterparty,
            "amount": amount,
            "currency": "EUR",
            "invoice_date": invoice_date,
            "status": DocumentStatus.PENDING,
            "booked_year": None,
            "booked_period": None,
            "uploaded_by_id": uploader.id,
            "uploaded_by_name": uploader.name,
            "decided_by_id": None,
            "decided_by_name": None,
            "decided_at": None,
            "created_at": created_at,
        }
        if index < first_pending:
            decider = rng.choice(deciders)
            rejected = rng.random() < 0.06
            row.update(
                status=DocumentStatus.REJECTED if rejected else DocumentStatus.APPROVED,
                booked_year=invoice_date.year,
                booked_period=invoice_date.month,
                decided_by_id=decider.id,
                decided_by_name=decider.name,
                decided_at=min(created_at + timedelta(hours=rng.randint(2, 14 * 24)), now),
            )
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- PDF files

# Helvetica glyph widths (1/1000 em) for the characters amounts are written with,
# so amounts can be right-aligned without a font library.
_AMOUNT_WIDTHS = {**dict.fromkeys("0123456789", 556), ".": 278, ",": 278, " ": 278}
_AMOUNT_WIDTHS.update({"€": 556, "-": 333})


def _amount_width(text: str, size: float) -> float:
    return sum(_AMOUNT_WIDTHS.get(ch, 556) for ch in text) * size / 1000


def euro(value: Decimal) -> str:
    """``€ 1.234,56``: Dutch notation."""
    whole, cents = f"{value:,.2f}".split(".")
    return f"€ {whole.replace(',', '.')},{cents}"


def _pdf_text(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (cp1252 covers Dutch and the euro sign)."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


class _Page:
    """Drawing commands for one A4 page, in points from the bottom-left corner."""

    def __init__(self) -> None:
        self.ops: list[bytes] = []

    def text(self, x: float, y: float, text: str, size: float = 10, bold: bool = False) -> None:
        font = b"/F2" if bold else b"/F1"
        self.ops.append(b"BT %s %g Tf %g %g Td %s Tj ET" % (font, size, x, y, _pdf_text(text)))

    def amount(self, right: float, y: float, value: Decimal, size: float = 10, bold=False):
        text = euro(value)
        self.text(right - _amount_width(text, size), y, text, size, bold)

    def rule(self, x1: float, y: float, x2: float, width: float = 0.5) -> None:
        self.ops.append(b"%g w %g %g m %g %g l S" % (width, x1, y, x2, y))

    def content(self) -> bytes:
        return b"\n".join(self.ops) + b"\n"


def build_pdf(page: _Page, title: str) -> bytes:
    """A complete one-page PDF 1.4 with Helvetica and Helvetica-Bold; exact xref offsets."""
    content = page.content()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%sendstream" % (len(content), content),
        b"<< /Title %s /Producer (Overdracht demo) >>"
        % _pdf_text(title.encode("ascii", "replace").decode()),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (
        len(objects) + 1,
        len(objects),
    )
    out += b"startxref\n%d\n" % xref_at
    out += b"%%EOF"
    return bytes(out)


def demo_pdf(
    *,
    kind: DocumentKind,
    number: str,
    invoice_date: date,
    amount: Decimal,
    counterparty: str,
    client: str,
    client_email: str,
    reference: str,
    subject: str = "",
) -> bytes:
    """One demo document as a PDF: who sent it, to whom, its number, date and amount."""
    if kind is DocumentKind.SALES_INVOICE:
        issuer, addressee, heading = client, counterparty, "FACTUUR"
    elif kind is DocumentKind.RECEIPT:
        issuer, addressee, heading = counterparty, client, "KASSABON"
    elif kind is DocumentKind.OTHER:
        issuer, addressee, heading = counterparty, client, (subject or "Document").upper()
    else:
        issuer, addressee, heading = counterparty, client, "FACTUUR"

    page = _Page()
    left, right = 56, 539
    page.text(left, 780, issuer, 18, bold=True)
    page.text(left, 762, "Demostraat 1, 9700 AA Groningen  -  KvK 00000000", 9)
    page.text(right - 150, 780, heading, 16, bold=True)
    page.rule(left, 748, right, 1)

    page.text(left, 720, "Aan:", 9)
    page.text(left, 706, addressee, 11, bold=True)
    if addressee == client:
        page.text(left, 692, client_email, 9)
    labels = [("Nummer", number), ("Datum", f"{invoice_date:%d-%m-%Y}")]
    if kind is not DocumentKind.RECEIPT:
        labels.append(("Vervaldatum", f"{invoice_date + timedelta(days=30):%d-%m-%Y}"))
    labels.append(("Kenmerk", reference))
    for i, (label, value) in enumerate(labels):
        y = 720 - 14 * i
        page.text(340, y, label, 9)
        page.text(420, y, value, 9, bold=label == "Nummer")

    page.rule(left, 640, right, 0.5)
    page.text(left, 626, "Omschrijving", 9, bold=True)
    page.text(right - 60, 626, "Bedrag", 9, bold=True)
    page.rule(left, 618, right, 0.5)
    if kind is DocumentKind.OTHER:
        page.text(left, 600, f"{subject or 'Document'} {invoice_date.year}", 10)
        page.amount(right, 600, amount)
        total_y = 560
    else:
        net = (amount / Decimal("1.21")).quantize(CENT, rounding=ROUND_HALF_UP)
        if kind is DocumentKind.RECEIPT:
            description = "Aankopen"
        else:
            description = "Geleverde goederen en diensten volgens afspraak"
        page.text(left, 600, description, 10)
        page.amount(right, 600, net)
        page.text(left, 584, "BTW 21%", 10)
        page.amount(right, 584, amount - net)
        total_y = 556
    page.rule(right - 150, total_y + 16, right, 0.5)
    page.text(right - 150, total_y, "Totaal", 11, bold=True)
    page.amount(right, total_y, amount, 11, bold=True)

    if kind is DocumentKind.RECEIPT:
        page.text(left, 480, "Betaald met pinpas. Bewaar deze bon voor uw administratie.", 9)
    else:
        page.text(left, 480, f"Graag betalen binnen 30 dagen onder vermelding van {number}.", 9)
        page.text(left, 466, "IBAN NL00 DEMO 0000 0000 00", 9)
    page.rule(left, 80, right, 0.5)
    page.text(left, 66, "Demobestand van Overdracht - geen echte factuur.", 8)
    return build_pdf(page, f"{heading.title()} {number} {counterparty}")


# --------------------------------------------------------------------------- migration file

MIGRATION_FILE_NAME = "migratiebestand-kantoor-oost.zip"
MIGRATION_SOURCE = "Kantoor Oost, desktoparchief"


@dataclass(frozen=True)
class DesktopAdministration:
    """An administration in the fictional desktop office's file: ``decided`` of its
    ``documents`` carry approved or rejected (they arrive locked), the rest no status."""

    code: str
    name: str
    mail_domain: str
    documents: int
    decided: int
    suppliers: tuple[str, ...]


# Exact Online, which Zuid (premium) and West (standard) both have a connection for; codes
# that neither uses, so Zuid imports all three without a conflict to choose.
DESKTOP_ADMINISTRATIONS: tuple[DesktopAdministration, ...] = (
    DesktopAdministration(
        "4001",
        "Fietsenmaker De Spaak",
        "despaak.example",
        14,
        14,
        ("Accell Nederland", "Gazelle Dealerservice"),
    ),
    DesktopAdministration(
        "4002",
        "Bouwbedrijf Oosterhof B.V.",
        "oosterhof-bouw.example",
        12,
        7,
        ("Bouwmaat", "Stiho", "Boels Verhuur"),
    ),
    DesktopAdministration(
        "4003",
        "Fysiotherapie Oost",
        "fysio-oost.example",
        10,
        0,
        ("Medireva", "Praktijkinrichting Oost"),
    ),
)


def demo_migration_file_path() -> str:
    """Where ``flask demo`` writes the desktop office's file: ``DEMO_MIGRATION_FILE`` or
    ``instance/migratiebestand-kantoor-oost.zip``."""
    configured = current_app.config.get("DEMO_MIGRATION_FILE")
    return configured or os.path.join(current_app.instance_path, MIGRATION_FILE_NAME)


def write_demo_migration_file(path: str) -> int:
    """Write the desktop office's migration file to ``path`` (replacing it) with the
    export's bag writer; returns how many documents it holds. Same bytes' content every
    run: the seed is fixed (only the zip's timestamps differ)."""
    files: list[tuple[str, bytes]] = []  # (path below data/, PDF), in document order
    rows: list[tuple] = []
    rng = random.Random(SEED + 1)
    kinds = [kind for kind, _ in _KIND_WEIGHTS]
    weights = [weight for _, weight in _KIND_WEIGHTS]
    package = Package.EXACT_ONLINE.value
    for spec in DESKTOP_ADMINISTRATIONS:
        for index in range(spec.documents):
            invoice_date = date(2024, 1, 8) + timedelta(days=index * 19 + rng.randint(0, 9))
            kind = rng.choices(kinds, weights)[0]
            prefix = _FILENAME_PREFIX[kind]
            number = f"{invoice_date.year}-{index + 1:05d}"
            counterparty = (
                rng.choice(CUSTOMERS)
                if kind is DocumentKind.SALES_INVOICE
                else rng.choice(spec.suppliers + COMMON_SUPPLIERS[:6])
            )
            amount = _amount(rng, kind)
            subject = rng.choice(OTHER_SUBJECTS) if kind is DocumentKind.OTHER else ""
            pdf = demo_pdf(
                kind=kind,
                number=number,
                invoice_date=invoice_date,
                amount=amount,
                counterparty=counterparty,
                client=spec.name,
                client_email=f"administratie@{spec.mail_domain}",
                reference=f"OOST-{spec.code}-{index + 1:05d}",
                subject=subject,
            )
            sha256 = hashlib.sha256(pdf).hexdigest()
            file = f"files/{sha256}.pdf"
            files.append((file, pdf))
            decided = index < spec.decided
            status = ""
            decided_by = decided_at = booked_year = booked_period = ""
            if decided:
                status = "rejected" if rng.random() < 0.1 else "approved"
                booked_year, booked_period = invoice_date.year, invoice_date.month
                decided_by = "H. Oostendorp"
                decided_at = _moment(invoice_date + timedelta(days=3), rng).isoformat()
            rows.append(
                (
                    package,
                    spec.code,
                    file,
                    f"{prefix}-{number}.pdf",
                    "application/pdf",
                    kind.value,
                    counterparty,
                    f"{amount:.2f}".replace(".", ","),
                    "EUR",
                    invoice_date.isoformat(),
                    status,
                    booked_year,
                    booked_period,
                    "Kantoor Oost",
                    decided_by,
                    decided_at,
                )
            )

    def csv_bytes(columns: tuple[str, ...], lines: Sequence[tuple]) -> list[bytes]:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=fmt.CSV_DELIMITER, lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows(lines)
        return [out.getvalue().encode(fmt.CSV_ENCODING)]

    administrations = [
        (package, a.code, a.name, f"administratie@{a.mail_domain}") for a in DESKTOP_ADMINISTRATIONS
    ]
    payload = [
        PayloadEntry(
            fmt.ADMINISTRATIONS_CSV.removeprefix("data/"),
            lambda: csv_bytes(fmt.ADMINISTRATION_COLUMNS, administrations),
            compress=True,
        ),
        *(
            PayloadEntry(
                file,
                lambda pdf=pdf: [pdf],
                sha256=file.removeprefix("files/").removesuffix(".pdf"),
                size=len(pdf),
            )
            for file, pdf in files
        ),
        PayloadEntry(
            fmt.DOCUMENTS_CSV.removeprefix("data/"),
            lambda: csv_bytes(fmt.DOCUMENT_COLUMNS, rows),
            compress=True,
        ),
    ]
    info = {
        fmt.INFO_FORMAT_VERSION: fmt.FORMAT_VERSION,
        fmt.INFO_SOURCE: MIGRATION_SOURCE,
        fmt.INFO_DATE: LAST_INVOICE_DATE.isoformat(),
        fmt.INFO_SCOPE: fmt.Scope.COMBINED.value,
        fmt.INFO_AGENT: "Desktoparchief (demo)",
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.part"
    with open(partial, "wb") as out:
        for chunk in write_bag(MIGRATION_FILE_NAME.removesuffix(".zip"), info, payload):
            out.write(chunk)
    os.replace(partial, path)  # never a half-written file under the name
    return len(rows)
