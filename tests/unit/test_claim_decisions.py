"""What a receiver's decisions come to (app.transfers.domain.decide_claim): which
administrations are accepted where, which are turned down and with what message, and
every problem at once, each tied to its field. Pure: no database, no requests."""

from __future__ import annotations

from app.transfers.domain import Candidate, ClaimDecision, Decision, decide_claim

FREE, CLASHING, OTHER_FREE = 11, 12, 13


def candidate(item_id: int, code: str = "1001", name: str | None = None, connections=None):
    return Candidate(
        item_id=item_id,
        name=name or f"Administratie {item_id}",
        code=code,
        package_label="Exact Online",
        connections={FREE: False, CLASHING: True, OTHER_FREE: False}
        if connections is None
        else connections,
    )


def accept(item_id: int, connection_id: int | None = FREE) -> Decision:
    return Decision(item_id, "accept", connection_id)


def reject(item_id: int, message: str | None = None) -> Decision:
    return Decision(item_id, "reject", message=message)


def decide(candidates, decisions, accept_terms=True) -> ClaimDecision:
    return decide_claim(candidates, decisions, accept_terms=accept_terms)


def fields(result: ClaimDecision) -> list[str]:
    return [f for f, _message, _params in result.problems]


# --- what goes through ---------------------------------------------------------------------


def test_an_administration_accepted_into_a_free_connection_is_accepted_there():
    result = decide([candidate(1)], [accept(1, FREE)])

    assert result == ClaimDecision(accepted=[(1, FREE)], rejected=[], problems=[])


def test_each_administration_goes_where_its_own_decision_says():
    result = decide(
        [candidate(1, "1001"), candidate(2, "1002"), candidate(3, "1003")],
        [accept(1, FREE), reject(2, "Geen klant meer"), accept(3, OTHER_FREE)],
    )

    assert result.accepted == [(1, FREE), (3, OTHER_FREE)]
    assert result.rejected == [(2, "Geen klant meer")]
    assert result.problems == []


def test_decisions_are_matched_to_administrations_by_item_not_by_order():
    result = decide(
        [candidate(1, "1001"), candidate(2, "1002")],
        [accept(2, OTHER_FREE), accept(1, FREE)],
    )

    assert result.accepted == [(1, FREE), (2, OTHER_FREE)]


def test_two_administrations_with_different_codes_may_share_a_connection():
    result = decide([candidate(1, "1001"), candidate(2, "1002")], [accept(1), accept(2)])

    assert result.accepted == [(1, FREE), (2, FREE)]
    assert result.problems == []


def test_two_administrations_with_one_code_may_go_under_different_connections():
    result = decide(
        [candidate(1, "1001"), candidate(2, "1001")], [accept(1, FREE), accept(2, OTHER_FREE)]
    )

    assert result.accepted == [(1, FREE), (2, OTHER_FREE)]
    assert result.problems == []


def test_a_rejected_administration_needs_no_connection_even_when_the_receiver_has_none():
    result = decide([candidate(1, connections={})], [reject(1)])

    assert result == ClaimDecision(accepted=[], rejected=[(1, None)], problems=[])


# --- the rejection message -------------------------------------------------------------------


def test_a_rejection_message_is_kept_without_surrounding_blanks():
    result = decide([candidate(1)], [reject(1, "  \n Dubbel aangeboden.\t ")])

    assert result.rejected == [(1, "Dubbel aangeboden.")]


def test_a_blank_or_missing_rejection_message_is_recorded_as_none():
    result = decide([candidate(1), candidate(2, "1002")], [reject(1, "   \n "), reject(2, None)])

    assert result.rejected == [(1, None), (2, None)]


def test_a_rejection_message_is_cut_to_two_thousand_characters_after_trimming():
    long = "  " + "a" * 1999 + "bcdef" + "  "

    [(_item, message)] = decide([candidate(1)], [reject(1, long)]).rejected

    assert len(message) == 2000
    assert message == "a" * 1999 + "b"


def test_a_rejection_message_of_exactly_two_thousand_characters_is_kept_whole():
    text = "x" * 1998 + "yz"

    assert decide([candidate(1)], [reject(1, text)]).rejected == [(1, text)]


# --- problems --------------------------------------------------------------------------------


def test_an_administration_without_a_decision_asks_to_accept_or_reject_it():
    result = decide([candidate(1, name="Bakkerij Korenschoof"), candidate(2, "1002")], [accept(2)])

    assert result.problems == [
        ("decisions.1", "Accept or reject “%(name)s”.", {"name": "Bakkerij Korenschoof"})
    ]
    assert result.accepted == [(2, FREE)]


def test_a_decision_that_is_neither_accept_nor_reject_counts_as_missing():
    result = decide([candidate(1, name="Klant A")], [Decision(1, "maybe", FREE)])

    assert result.problems == [("decisions.1", "Accept or reject “%(name)s”.", {"name": "Klant A"})]
    assert result.accepted == [] and result.rejected == []


def test_accepting_into_a_connection_that_is_not_among_the_choices_asks_for_one():
    result = decide([candidate(1, name="Klant A")], [accept(1, 999)])

    assert result.problems == [
        ("decisions.1", "Choose the connection “%(name)s” goes under.", {"name": "Klant A"})
    ]
    assert result.accepted == []


def test_accepting_without_choosing_a_connection_asks_for_one():
    result = decide([candidate(1, name="Klant A")], [accept(1, None)])

    assert fields(result) == ["decisions.1"]
    assert result.problems[0][1] == "Choose the connection “%(name)s” goes under."
    assert result.accepted == []


def test_accepting_when_the_receiver_has_no_connection_to_the_package_says_so():
    result = decide([candidate(1, name="Klant A", connections={})], [accept(1, FREE)])

    assert result.problems == [
        (
            "decisions.1",
            "Your environment has no connection to %(package)s for “%(name)s”.",
            {"package": "Exact Online", "name": "Klant A"},
        )
    ]
    assert result.accepted == []


def test_accepting_into_a_connection_that_already_has_the_code_is_refused_with_the_code():
    result = decide([candidate(1, code="4711", name="Klant A")], [accept(1, CLASHING)])

    assert result.problems == [
        (
            "decisions.1",
            "The chosen connection already has an administration with code "
            "%(code)s; “%(name)s” cannot go there.",
            {"code": "4711", "name": "Klant A"},
        )
    ]
    assert result.accepted == []


def test_two_accepted_administrations_with_one_code_in_one_connection_are_a_problem():
    result = decide([candidate(1, "1001"), candidate(2, "1001")], [accept(1), accept(2)])

    assert result.problems == [
        ("decisions", "Two administrations with the same code cannot share a connection.", {})
    ]


def test_one_code_twice_is_no_clash_when_one_of_the_two_is_rejected():
    result = decide([candidate(1, "1001"), candidate(2, "1001")], [accept(1), reject(2)])

    assert result.problems == []
    assert result.accepted == [(1, FREE)]


def test_claiming_without_accepting_the_terms_is_a_problem_of_the_terms_field():
    result = decide([candidate(1)], [accept(1)], accept_terms=False)

    assert result.problems == [("accept_terms", "Accept the terms and the fee to claim.", {})]


def test_rejecting_everything_needs_no_terms_and_no_fee():
    result = decide([candidate(1), candidate(2)], [reject(1), reject(2)], accept_terms=False)

    assert fields(result) == []
    assert [item_id for item_id, _message in result.rejected] == [1, 2]


def test_accepting_one_still_needs_the_terms_accepted():
    result = decide([candidate(1), candidate(2)], [reject(1), accept(2)], accept_terms=False)

    assert fields(result) == ["accept_terms"]


def test_every_problem_is_reported_at_once_each_under_its_own_field():
    result = decide(
        [
            candidate(1, "1001"),
            candidate(2, "1002"),
            candidate(3, "1003"),
            candidate(4, "1004", connections={}),
            candidate(5, "1005"),
            candidate(6, "1005"),
        ],
        [accept(2, 999), accept(3, CLASHING), accept(4, FREE), accept(5), accept(6)],
        accept_terms=False,
    )

    assert fields(result) == [
        "decisions.1",
        "decisions.2",
        "decisions.3",
        "decisions.4",
        "decisions",
        "accept_terms",
    ]


def test_only_the_possible_decisions_are_listed_as_accepted_or_rejected_beside_problems():
    # The function lists what is possible; the claim service records nothing at all
    # when there is any problem (it raises before redeeming).
    result = decide(
        [candidate(1, "1001"), candidate(2, "1002"), candidate(3, "1003")],
        [accept(1, FREE), accept(2, CLASHING), reject(3, "nee")],
        accept_terms=False,
    )

    assert result.accepted == [(1, FREE)]
    assert result.rejected == [(3, "nee")]
    assert fields(result) == ["decisions.2", "accept_terms"]
    assert result.problems  # so the claim as a whole is refused


def test_decisions_for_items_that_are_not_on_offer_are_ignored():
    result = decide([candidate(1)], [accept(1), accept(99, FREE), reject(98)])

    assert result == ClaimDecision(accepted=[(1, FREE)], rejected=[], problems=[])
