"""A Hypothesis state machine over the life of transfers, across three offices.

Noord and Zuid (premium) and West (standard) offer their clean administrations to each
other's superusers through ``/api/v1/transfers``; the receiving side enters wrong codes
and real codes of offers not meant for it, and claims (accepting into its connection or
rejecting) through ``/api/v1/claims``; the copy job and the expiry sweep run in the test
process; the clock moves (the code dies 15 days after issue); offers are withdrawn and
extended; support revokes through ``/api/v1/support``. The machine keeps a small model of
what every transfer, item and administration should be, and after every step compares
it with what the API answers and the database holds:

- one state per transfer, and the items' states consistent with it;
- claimed ⇔ exactly one copy per accepted administration once copied (one target
  administration with as many documents as the source, one provenance row);
- no office sees another's objects (a 404 for an offer not made by or to it; lists
  hold only its own or addressed offers);
- no answer to the receiving side or to support holds a code.

Each example starts from fresh offices with unique codes under a frozen clock, and
empties the tables when it ends.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import time_machine
from flask import current_app
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select

from app.admin_settings.models import Administration, Document, Provenance
from app.auth.models import Role, User
from app.auth.services import create_api_token, hash_password
from app.extensions import db
from app.transfers import domain, jobs
from app.transfers.copying import copy_waiting
from app.transfers.models import Transfer, TransferItem
from tests.conftest import TEST_PASSWORD, Builders

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TTL = timedelta(days=15)
MAX_EXTENSIONS = 2
OPEN_ITEMS = {"offered", "claiming", "failed"}
ENDED_WITHOUT_CLAIM = {"withdrawn", "expired", "revoked"}
RUNS = itertools.count(1)
CLOCK_STEPS = [
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=15),
    timedelta(days=16),
]


@dataclass
class OfficeModel:
    name: str
    premium: bool
    environment_id: int
    connection_id: int
    email: str
    headers: dict
    # administration id → "active", "offered" or "migrated"; only the ones built here.
    administrations: dict[int, str] = field(default_factory=dict)


@dataclass
class TransferModel:
    id: int
    source: str
    to: str  # the office whose superuser the offer is addressed to
    code: str
    expires_at: datetime
    items: dict[int, str]  # item id → state
    administration_of: dict[int, int]  # item id → source administration id
    state: str = "offered"
    claimed_by: str | None = None
    claim_id: int | None = None
    extensions: int = 0

    def live(self, now: datetime) -> bool:
        return self.state == "offered" and self.claimed_by is None and now < self.expires_at


_password_hash: list[str] = []


def _user(environment_id: int | None, role: Role, email: str) -> User:
    """A user as ``create_user`` makes one, with the password hashed once per run (the
    machine only uses bearer tokens; hashing per example would cost seconds)."""
    if not _password_hash:
        _password_hash.append(hash_password(TEST_PASSWORD))
    user = User(
        email=email,
        name=email.split("@")[0].title(),
        role=role,
        password_hash=_password_hash[0],
        environment_id=environment_id,
    )
    db.session.add(user)
    db.session.commit()
    return user


class TransferMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = current_app._get_current_object()
        self.client = self.app.test_client()
        self.traveller = time_machine.travel(T0, tick=False)
        self.clock = self.traveller.start()
        self.now = T0
        self.transfers: dict[int, TransferModel] = {}
        self.documents: dict[int, int] = {}  # source administration id → documents
        # Transfers the last step acted on: their views are checked after it.
        self.touched: set[int] = set()
        self.steps = 0
        run = next(RUNS)
        build = Builders()
        self.offices: dict[str, OfficeModel] = {}
        for name, premium, documents in (
            ("noord", True, (0, 2)),
            ("zuid", True, (1, 3)),
            ("west", False, (2,)),
        ):
            env = build.environment(
                f"Kantoor {name.title()} {run}",
                plan="premium" if premium else "standard",
                office_code=f"{name[0].upper()}{run}",
            )
            superuser = _user(env.id, Role.SUPERUSER, f"super{run}@{name}.example")
            connection = build.connection(env)
            office = OfficeModel(
                name, premium, env.id, connection.id, superuser.email, self._headers(superuser)
            )
            for n in documents:
                administration = build.administration(connection)
                for _ in range(n):
                    build.document(administration, "approved")
                office.administrations[administration.id] = "active"
                self.documents[administration.id] = n
            self.offices[name] = office
        support = _user(None, Role.SUPPORT, f"support{run}@overdracht.example")
        self.support_headers = self._headers(support)

    @staticmethod
    def _headers(user) -> dict:
        _row, token = create_api_token(user, "state machine", origin="tests")
        db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    def teardown(self) -> None:
        self.traveller.stop()
        db.session.rollback()
        # DELETE, not the fixture's TRUNCATE: far quicker for a few rows on PostgreSQL.
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()

    # --- talking to the API ------------------------------------------------------------------

    def _call(self, method: str, url: str, headers: dict, body: dict | None = None):
        response = self.client.open(url, method=method, headers=headers, json=body)
        assert response.status_code < 500, (method, url, response.get_data(as_text=True))
        return response

    def _codes(self) -> list[str]:
        return [t.code for t in self.transfers.values()]

    def _assert_no_code(self, response, who: str) -> None:
        """No answer to the receiving side or support holds a code, in any spelling."""
        body = response.get_data(as_text=True).upper()
        for code in self._codes():
            assert code not in body, f"{who} was shown a code: {body[:500]}"
            assert code.replace("-", "") not in body, f"{who} was shown a code: {body[:500]}"

    def _transfer(self, data) -> TransferModel:
        return self.transfers[data.draw(st.sampled_from(sorted(self.transfers)), label="transfer")]

    # --- rules ---------------------------------------------------------------------------------

    @initialize(data=st.data(), n=st.integers(min_value=1, max_value=3))
    def first_offers(self, data, n: int) -> None:
        """Start with a few offers, so every rule has something to act on."""
        for _ in range(n):
            self._offer(data)

    @rule(data=st.data())
    def offer(self, data) -> None:
        """An office offers one or two of its active administrations to another office
        (refused for one without the premium plan)."""
        self._offer(data)

    def _offer(self, data) -> None:
        sources = [o for o in self.offices.values() if "active" in o.administrations.values()]
        if not sources:
            return
        source = data.draw(st.sampled_from(sources), label="source")
        to = data.draw(
            st.sampled_from([o for o in self.offices.values() if o is not source]), label="to"
        )
        active = sorted(a for a, s in source.administrations.items() if s == "active")
        chosen = data.draw(
            st.lists(st.sampled_from(active), min_size=1, max_size=2, unique=True),
            label="administrations",
        )
        response = self._call(
            "POST",
            "/api/v1/transfers",
            source.headers,
            {
                "administration_ids": chosen,
                "recipient_emails": [to.email],
                "checklist_confirmed": True,
                "accept_terms": True,
            },
        )
        if not to.premium:
            # An office that cannot receive is refused at once, and nothing is offered.
            assert response.status_code == 422, response.get_json()
            assert set(response.get_json()["errors"]) == {"recipient_emails"}
            return
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert body["state"] == "offered" and body["direction"] == "outgoing"
        assert body["code"], body
        items = {i["id"]: i["administration_id"] for i in body["items"]}
        assert sorted(items.values()) == sorted(chosen)
        model = TransferModel(
            id=body["id"],
            source=source.name,
            to=to.name,
            code=body["code"].upper(),
            expires_at=self.now + TTL,
            items={i: "offered" for i in items},
            administration_of=items,
        )
        assert datetime.fromisoformat(body["expires_at"]) == model.expires_at
        for administration_id in chosen:
            source.administrations[administration_id] = "offered"
        self.transfers[model.id] = model
        self.touched.add(model.id)

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def withdraw(self, data) -> None:
        """The offering side withdraws; only while the code lives and no claim started."""
        t = self._transfer(data)
        response = self._call(
            "POST", f"/api/v1/transfers/{t.id}/withdraw", self.offices[t.source].headers
        )
        if t.live(self.now):
            assert response.status_code == 200, response.get_json()
            self._end(t, "withdrawn")
            event("withdrawn")
        else:
            assert response.status_code == 409, response.get_json()
        self.touched.add(t.id)

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def extend(self, data) -> None:
        """The offering side extends a live offer to 15 days from now, at most twice."""
        t = self._transfer(data)
        response = self._call(
            "POST", f"/api/v1/transfers/{t.id}/extend", self.offices[t.source].headers
        )
        new_expiry = self.now + TTL
        if t.live(self.now) and t.extensions < MAX_EXTENSIONS and t.expires_at < new_expiry:
            assert response.status_code == 200, response.get_json()
            t.expires_at = new_expiry
            t.extensions += 1
            event("extended")
            assert datetime.fromisoformat(response.get_json()["expires_at"]) == new_expiry
        else:
            assert response.status_code == 409, response.get_json()
        self.touched.add(t.id)

    @rule(
        data=st.data(),
        kind=st.sampled_from(["random", "mistyped", "other_office"]),
        endpoint=st.sampled_from(["preview", "claim"]),
    )
    def wrong_claim(self, data, kind: str, endpoint: str) -> None:
        """A code that leads nowhere for this office: every one a 422, nothing changes."""
        office = data.draw(st.sampled_from(sorted(self.offices)), label="office")
        if kind == "random" or not self.transfers:
            symbols = data.draw(
                st.text(alphabet=domain.ALPHABET, min_size=24, max_size=24), label="symbols"
            )
            code = domain.format_code(symbols + domain._check_symbol(symbols))
            assert code not in self._codes()
        elif kind == "mistyped":
            real = self._transfer(data).code
            position = data.draw(st.sampled_from([i for i, c in enumerate(real) if c != "-"]))
            wrong = data.draw(st.sampled_from([c for c in domain.ALPHABET if c != real[position]]))
            code = real[:position] + wrong + real[position + 1 :]
        else:
            others = [t for t in self.transfers.values() if t.to != office]
            if not others:
                return
            code = data.draw(st.sampled_from(others)).code
        items = [{"item_id": 1, "action": "reject"}]
        if endpoint == "preview":
            url, body = "/api/v1/claims/preview", {"code": code}
        else:
            url, body = "/api/v1/claims", {"code": code, "decisions": items, "accept_terms": True}
        response = self._call("POST", url, self.offices[office].headers, body)
        assert response.status_code == 422, (kind, response.get_json())
        self._assert_no_code(response, f"{office} entering a wrong code")

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def claim(self, data) -> None:
        """The addressed office claims: per item accept into its connection, or reject
        (mostly a live offer; sometimes any, which must then be refused)."""
        live = [i for i, t in self.transfers.items() if t.live(self.now)]
        if live and data.draw(st.integers(0, 3), label="live") > 0:
            t = self.transfers[data.draw(st.sampled_from(sorted(live)), label="transfer")]
        else:
            t = self._transfer(data)
        office = self.offices[t.to]
        preview = self._call("POST", "/api/v1/claims/preview", office.headers, {"code": t.code})
        self._assert_no_code(preview, f"{t.to}'s preview")
        decisions = {
            item_id: data.draw(st.sampled_from(["accept", "reject"]), label=f"item {item_id}")
            for item_id in sorted(t.items)
        }
        response = self._call(
            "POST",
            "/api/v1/claims",
            office.headers,
            {
                "code": t.code.lower().replace("-", " "),  # forgiven
                "decisions": [
                    {"item_id": i, "action": a, "connection_id": office.connection_id}
                    if a == "accept"
                    else {"item_id": i, "action": a, "message": "Niet voor ons"}
                    for i, a in decisions.items()
                ],
                "accept_terms": True,
            },
        )
        self._assert_no_code(response, f"{t.to}'s claim")
        self.touched.add(t.id)
        if not (t.live(self.now) and office.premium):
            assert preview.status_code in (200, 422), preview.get_json()
            assert response.status_code == 422, response.get_json()
            return
        assert preview.status_code == 200, preview.get_json()
        assert response.status_code == 202, response.get_json()
        t.claimed_by = t.to
        event(
            f"claimed, {len(decisions)} item(s), {list(decisions.values()).count('accept')} accepted"
        )
        t.claim_id = response.get_json()["id"]
        source = self.offices[t.source]
        for item_id, action in decisions.items():
            if action == "accept":
                t.items[item_id] = "claiming"
            else:
                t.items[item_id] = "rejected"
                source.administrations[t.administration_of[item_id]] = "active"
        if "claiming" not in t.items.values():
            t.state = "completed"
        elif data.draw(st.booleans(), label="the worker runs at once"):
            self._copy()  # else the copy rule, or a revoke, comes first

    @rule()
    def copy(self) -> None:
        """The copy job copies every claimed item waiting for it, once."""
        self._copy()

    def _copy(self) -> None:
        waiting = [
            (t, i) for t in self.transfers.values() for i, s in t.items.items() if s == "claiming"
        ]
        assert copy_waiting() == len(waiting)
        if waiting:
            event("copied")
        for t, item_id in waiting:
            self.touched.add(t.id)
            t.items[item_id] = "migrated"
            self.offices[t.source].administrations[t.administration_of[item_id]] = "migrated"
            if not OPEN_ITEMS & set(t.items.values()):
                t.state = "completed"
        assert copy_waiting() == 0  # never twice

    @rule(step=st.sampled_from(CLOCK_STEPS))
    def advance_clock(self, step: timedelta) -> None:
        self.clock.shift(step)
        self.now += step

    @rule()
    def sweep(self) -> None:
        """The expiry sweep marks exactly the unclaimed offers past their expiry."""
        due = [
            t
            for t in self.transfers.values()
            if t.state == "offered" and t.claimed_by is None and self.now >= t.expires_at
        ]
        assert jobs.sweep_expired() == len(due)
        for t in due:
            self._end(t, "expired")
            self.touched.add(t.id)
            event("swept")
        assert jobs.sweep_expired() == 0

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def revoke(self, data) -> None:
        """Support ends an open transfer (claimed or not) with a reason; 409 once ended."""
        t = self._transfer(data)
        response = self._call(
            "POST",
            f"/api/v1/support/transfers/{t.id}/revoke",
            self.support_headers,
            {"reason": "Vastgelopen, op verzoek van beide kantoren"},
        )
        self._assert_no_code(response, "support's revoke")
        self.touched.add(t.id)
        if t.state != "offered":
            assert response.status_code == 409, response.get_json()
            return
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["state"] == "revoked"
        event("revoked after a claim" if t.claimed_by else "revoked")
        self._end(t, "revoked")

    def _end(self, t: TransferModel, state: str) -> None:
        """The transfer ends: its open items take its state, their administrations are free."""
        t.state = state
        for item_id, item_state in t.items.items():
            if item_state in OPEN_ITEMS:
                t.items[item_id] = state
                self.offices[t.source].administrations[t.administration_of[item_id]] = "active"

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def one_state_per_transfer_and_items_consistent_with_it(self) -> None:
        db.session.commit()
        transfers = {t.id: t for t in db.session.scalars(select(Transfer))}
        assert set(transfers) == set(self.transfers)
        env_ids = {o.environment_id: o.name for o in self.offices.values()}
        for transfer_id, model in self.transfers.items():
            row = transfers[transfer_id]
            states = {i.id: i.state.value for i in row.items}
            assert row.state.value == model.state, (model, row.state)
            assert states == model.items, (model, states)
            claimed_by = env_ids.get(row.target_environment_id)
            assert claimed_by == model.claimed_by, (model, row.target_environment_id)
            # The model aside: what each state allows of its items.
            values = set(states.values())
            if row.state.value in ENDED_WITHOUT_CLAIM:
                assert not values & OPEN_ITEMS, states
            elif row.state.value == "completed":
                assert values <= {"migrated", "rejected"}, states
            elif row.target_environment_id is None:
                assert values == {"offered"}, states
            else:
                assert values & OPEN_ITEMS and "offered" not in values, states
        for office in self.offices.values():
            rows = dict(
                db.session.execute(
                    select(Administration.id, Administration.state).where(
                        Administration.id.in_(list(office.administrations))
                    )
                ).all()
            )
            assert {i: s.value for i, s in rows.items()} == office.administrations

    @invariant()
    def claimed_means_exactly_one_copy_per_accepted_administration(self) -> None:
        db.session.commit()
        migrated = {
            item_id: t
            for t in self.transfers.values()
            for item_id, s in t.items.items()
            if s == "migrated"
        }
        provenance = list(db.session.execute(select(Provenance.transfer_item_id)).scalars())
        assert sorted(provenance) == sorted(migrated), "one provenance row per migrated item"
        for office in self.offices.values():
            arrived = [i for i, t in migrated.items() if t.claimed_by == office.name]
            in_env = db.session.scalar(
                select(func.count())
                .select_from(Administration)
                .where(Administration.environment_id == office.environment_id)
            )
            assert in_env == len(office.administrations) + len(arrived), "no partial copies"
        for item_id, t in migrated.items():
            item = db.session.get(TransferItem, item_id)
            target = db.session.get(Administration, item.target_administration_id)
            assert target.environment_id == self.offices[t.claimed_by].environment_id
            assert target.connection_id == self.offices[t.claimed_by].connection_id
            documents = db.session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.administration_id == target.id)
            )
            assert documents == self.documents[item.administration_id] == item.documents_copied
        for item_id in (i for t in self.transfers.values() for i in t.items):
            if item_id not in migrated:
                assert db.session.get(TransferItem, item_id).target_administration_id is None

    @invariant()
    def no_office_sees_another_offices_objects_and_no_code_reaches_the_receiver(self) -> None:
        """The views of what the last step touched; and, one list per step in turn (a
        request costs tens of milliseconds): an office's outgoing or incoming list, and
        every sixth step support's."""
        self.steps += 1
        office = list(self.offices.values())[self.steps % 3]
        for direction in [("outgoing", "incoming")[self.steps // 3 % 2]]:
            response = self._call(
                "GET",
                f"/api/v1/transfers?direction={direction}&per_page=100",
                office.headers,
            )
            assert response.status_code == 200, response.get_json()
            body = response.get_json()
            listed = sorted({row["transfer_id"] for row in body["items"]})
            side = "source" if direction == "outgoing" else "to"
            expected = sorted(
                t.id for t in self.transfers.values() if getattr(t, side) == office.name
            )
            assert listed == expected, (office.name, direction, listed, expected)
            if direction == "incoming":
                self._assert_no_code(response, f"{office.name}'s incoming list")
            else:
                codes = {row["transfer_id"]: row["code"] for row in body["items"]}
                assert all(codes[i].upper() == self.transfers[i].code for i in codes)
        if self.steps % 6 == 0:
            response = self._call(
                "GET", "/api/v1/support/transfers?per_page=100", self.support_headers
            )
            assert response.status_code == 200
            assert sorted(r["id"] for r in response.get_json()["items"]) == sorted(self.transfers)
            self._assert_no_code(response, "support's list")
        for transfer_id in sorted(self.touched):
            self._check_visibility(self.transfers[transfer_id])
        self.touched.clear()

    def _check_visibility(self, t: TransferModel) -> None:
        """Only the offering and the addressed office see the offer (and its claim)."""
        for office in self.offices.values():
            if office.name == t.source:
                continue  # its outgoing list and the rules' own answers show it
            response = self._call("GET", f"/api/v1/transfers/{t.id}", office.headers)
            if office.name == t.to:
                assert response.status_code == 200, response.get_json()
                assert response.get_json()["direction"] == "incoming"
                self._assert_no_code(response, f"{office.name}'s view of an incoming offer")
            else:
                assert response.status_code == 404, (office.name, t, response.get_json())
            if t.claim_id is not None:
                response = self._call("GET", f"/api/v1/claims/{t.claim_id}", office.headers)
                expected = 200 if office.name in (t.source, t.to) else 404
                assert response.status_code == expected, (office.name, response.get_json())
                if office.name == t.to:
                    self._assert_no_code(response, f"{office.name}'s claim progress")
        response = self._call("GET", f"/api/v1/support/transfers/{t.id}", self.support_headers)
        assert response.status_code == 200
        self._assert_no_code(response, "support's view of a transfer")


TransferMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class TestTransferStateMachine(TransferMachine.TestCase):
    """Offer, withdraw, wrong claim, claim, copy, the clock, extend, revoke and the sweep,
    in any order, keep every transfer in one consistent state, copy each accepted
    administration exactly once, and show nobody what is not theirs."""
