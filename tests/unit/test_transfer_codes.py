"""Transfer codes (app.transfers.domain): format, entropy, normalisation and the check
symbol. No database, no requests.

The check symbol must tell a typo from a guess: every single wrong symbol and every
swap of two neighbouring (different) symbols has to be caught as ``MistypedCode``.
"""

from __future__ import annotations

import itertools
import re

import pytest

from app.transfers.domain import (
    ALPHABET,
    CODE_BITS,
    DATA_SYMBOLS,
    CodeError,
    MalformedCode,
    MistypedCode,
    code_digest,
    code_from_nonce,
    format_code,
    normalise_code,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
FORMATTED = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")


def nonce(i: int) -> bytes:
    return i.to_bytes(16, "big")


def codes(n: int, key: bytes = KEY) -> list[str]:
    return [code_from_nonce(nonce(i), key) for i in range(n)]


def first_code(predicate) -> str:
    """The first code of a deterministic series that satisfies ``predicate``."""
    return next(
        c for c in (code_from_nonce(nonce(i), KEY) for i in itertools.count()) if predicate(c)
    )


def with_check(data: str) -> str:
    """``data`` (24 symbols) completed with its check symbol, found through the public API."""
    for symbol in ALPHABET:
        try:
            return normalise_code(data + symbol)
        except MistypedCode:
            continue
    raise AssertionError(f"no check symbol fits {data}")


def test_exactly_one_check_symbol_fits_any_data():
    for code in codes(20):
        fits = [s for s in ALPHABET if not is_caught_as_typo(code[:-1] + s)]
        assert fits == [code[-1]]


def is_caught_as_typo(candidate: str) -> bool:
    try:
        normalise_code(candidate)
    except MistypedCode:
        return True
    return False


# --- format and entropy ------------------------------------------------------------------------


def test_the_alphabet_is_crockfords_base32_without_look_alikes():
    assert len(ALPHABET) == 32 == len(set(ALPHABET))
    assert not set("ILOU") & set(ALPHABET)
    assert set(ALPHABET) == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_a_code_is_25_symbols_of_the_alphabet():
    for code in codes(200):
        assert len(code) == 25
        assert set(code) <= set(ALPHABET)


def test_a_formatted_code_is_five_groups_of_five_separated_by_dashes():
    code = codes(1)[0]
    formatted = format_code(code)
    assert FORMATTED.match(formatted), formatted
    assert formatted.replace("-", "") == code


def test_a_code_carries_at_least_112_bits():
    assert CODE_BITS >= 112
    assert DATA_SYMBOLS * 5 == CODE_BITS
    assert DATA_SYMBOLS + 1 == 25  # one check symbol on top of the random ones


def test_every_data_position_takes_every_symbol_so_no_bits_are_wasted():
    sample = codes(2000)
    for position in range(DATA_SYMBOLS):
        seen = {code[position] for code in sample}
        assert seen == set(ALPHABET), f"position {position} only takes {sorted(seen)}"


def test_codes_of_different_nonces_differ():
    sample = codes(2000)
    assert len(set(sample)) == len(sample)


def test_the_code_of_a_nonce_is_the_same_every_time_under_one_key():
    assert code_from_nonce(nonce(7), KEY) == code_from_nonce(nonce(7), KEY)


def test_the_code_of_a_nonce_is_different_under_another_key():
    assert code_from_nonce(nonce(7), KEY) != code_from_nonce(nonce(7), OTHER_KEY)


def test_every_derived_code_passes_its_own_check():
    for code in codes(500):
        assert normalise_code(code) == code


def test_the_digest_is_keyed_and_does_not_contain_the_code():
    code = codes(1)[0]
    digest = code_digest(code, KEY)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == code_digest(code, KEY)
    assert digest != code_digest(code, OTHER_KEY)
    assert code.lower() not in digest


# --- normalisation -----------------------------------------------------------------------------


def test_lower_case_is_forgiven():
    code = first_code(lambda c: any(ch.isalpha() for ch in c))
    assert normalise_code(code.lower()) == code


def test_dashes_and_spaces_are_forgiven():
    code = codes(1)[0]
    assert normalise_code(format_code(code)) == code
    assert normalise_code(format_code(code).replace("-", " ")) == code
    assert normalise_code("  " + " ".join(code) + "  ") == code
    assert normalise_code(format_code(code).replace("-", " - ")) == code


def test_an_en_dash_between_groups_is_forgiven():
    code = codes(1)[0]
    assert normalise_code(format_code(code).replace("-", "\u2013")) == code


@pytest.mark.parametrize("typed_zero", ["O", "o"])
def test_the_letter_o_is_read_as_zero(typed_zero):
    code = first_code(lambda c: "0" in c)
    assert normalise_code(code.replace("0", typed_zero)) == code


@pytest.mark.parametrize("typed_one", ["I", "i", "L", "l"])
def test_the_letters_i_and_l_are_read_as_one(typed_one):
    code = first_code(lambda c: "1" in c)
    assert normalise_code(code.replace("1", typed_one)) == code


def test_everything_forgiven_at_once():
    code = first_code(lambda c: "0" in c and "1" in c)
    typed = format_code(code).lower().replace("0", "o").replace("1", "l").replace("-", " \u2013 ")
    assert normalise_code(typed) == code


# --- typos are told apart from guesses ------------------------------------------------------------


@pytest.mark.parametrize("i", range(3))
def test_every_single_wrong_symbol_is_caught_as_a_typo(i):
    code = codes(3)[i]
    missed = []
    for position in range(len(code)):
        for symbol in ALPHABET:
            if symbol == code[position]:
                continue
            typo = code[:position] + symbol + code[position + 1 :]
            if not is_caught_as_typo(typo):
                missed.append((position, code[position], symbol))
    assert missed == [], f"single substitutions not caught in {code}: {missed}"


@pytest.mark.parametrize("i", range(3))
def test_every_swap_of_neighbours_in_a_derived_code_is_caught_as_a_typo(i):
    code = codes(3)[i]
    missed = []
    for position in range(len(code) - 1):
        a, b = code[position], code[position + 1]
        if a == b:
            continue
        swapped = code[:position] + b + a + code[position + 2 :]
        if not is_caught_as_typo(swapped):
            missed.append((position, a + b))
    assert missed == [], f"swaps not caught in {code}: {missed}"


@pytest.mark.parametrize("position", [0, 1, DATA_SYMBOLS - 2], ids=["first", "second", "last"])
def test_every_swap_of_two_different_neighbouring_data_symbols_is_caught_as_a_typo(position):
    """Exhaustive over symbol pairs: every ordered pair of different symbols at a pair of
    neighbouring data positions (the rest of the code fixed). The check weighs positions
    alternately, so these positions cover both weightings and the end of the data."""
    base = "7" * DATA_SYMBOLS
    missed = []
    for a, b in itertools.permutations(ALPHABET, 2):
        data = base[:position] + a + b + base[position + 2 :]
        code = with_check(data)
        swapped = code[:position] + b + a + code[position + 2 :]
        if not is_caught_as_typo(swapped):
            missed.append(a + b)
    assert missed == [], f"swaps at position {position} not caught: {missed}"


def test_swapping_the_last_data_symbol_with_the_check_symbol_is_caught_as_a_typo():
    base = "7" * (DATA_SYMBOLS - 1)
    missed = []
    for last in ALPHABET:
        code = with_check(base + last)
        check = code[-1]
        if check == last:
            continue
        swapped = code[:-2] + check + last
        if not is_caught_as_typo(swapped):
            missed.append(last + check)
    assert missed == [], f"swaps with the check symbol not caught: {missed}"


def test_a_typo_is_not_reported_as_malformed_and_both_are_code_errors():
    code = codes(1)[0]
    wrong = ALPHABET[(ALPHABET.index(code[3]) + 1) % 32]
    typo = code[:3] + wrong + code[4:]
    with pytest.raises(MistypedCode) as caught:
        normalise_code(typo)
    assert not isinstance(caught.value, MalformedCode)
    assert issubclass(MistypedCode, CodeError) and issubclass(MalformedCode, CodeError)


# --- malformed input ---------------------------------------------------------------------------


def _malformed_inputs() -> dict[str, str | None]:
    code = codes(1)[0]
    return {
        "empty": "",
        "only spaces and dashes": "  - -  ",
        "none": None,
        "one symbol short": code[:-1],
        "much too short": code[:10],
        "one symbol too many": code + "0",
        "with U": "U" + code[1:],
        "with an exclamation mark": code[:12] + "!" + code[13:],
        "with a letter outside base32 after forgiveness": code[:5] + "*" + code[6:],
    }


@pytest.mark.parametrize("name", list(_malformed_inputs()))
def test_malformed_input_is_reported_as_malformed_not_as_a_typo(name):
    raw = _malformed_inputs()[name]
    with pytest.raises(MalformedCode):
        normalise_code(raw)
