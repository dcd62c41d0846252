"""A copy's progress reads in real plurals: "0 van 1 document", "0 van 4 documenten"."""

from __future__ import annotations

import pytest

from tests.helpers import accept_all, offer
from tests.integration.test_claim import offerable


@pytest.mark.parametrize(
    ("documents", "said"), [(1, "0 van 1 document"), (4, "0 van 4 documenten")]
)
def test_progress_counts_documents_in_words(build, login, office, other_office, documents, said):
    transfer, code = offer(
        office.superuser, [offerable(build, office.connection, documents=documents)]
    )
    claim = accept_all(other_office.superuser, transfer, code, other_office.connection)

    progress = (
        login(other_office.superuser)
        .get(f"/settings/migrations/claims/{claim.id}/progress")
        .get_json()
    )

    assert [i["text"] for i in progress["items"]] == [said]
