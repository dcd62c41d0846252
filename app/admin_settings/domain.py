"""Pure rules about administrations and documents; no database, no Flask."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from app.admin_settings.models import AdministrationState, DocumentStatus


class BlockerKind(enum.StrEnum):
    """Why an administration cannot move yet (checklist points 2–4)."""

    AUTHORIZERS_IN_FLOWS = "authorizers_in_flows"
    ACTIVE_WORKFLOWS = "active_workflows"
    UNDECIDED_DOCUMENTS = "undecided_documents"


@dataclass(frozen=True)
class Blocker:
    kind: BlockerKind
    count: int


@dataclass(frozen=True)
class AdministrationFacts:
    """The raw counts the checklist looks at, for one administration."""

    pending_documents: int = 0
    approved_documents: int = 0
    rejected_documents: int = 0
    active_workflows: int = 0
    authorizer_steps: int = 0
    # Of the counts by status above, the locked ("gemigreerd") ones: a locked document
    # keeps the status it was imported with, so a locked approved or rejected one is
    # decided for the checklist.
    locked_pending_documents: int = 0
    locked_approved_documents: int = 0
    locked_rejected_documents: int = 0

    @property
    def total_documents(self) -> int:
        return self.pending_documents + self.approved_documents + self.rejected_documents

    @property
    def locked_documents(self) -> int:
        return (
            self.locked_pending_documents
            + self.locked_approved_documents
            + self.locked_rejected_documents
        )

    def shown(self, status: DocumentStatus) -> int:
        """How many documents people see with this status: the unlocked ones (a locked
        document is shown as "gemigreerd" instead)."""
        return getattr(self, f"{status.value}_documents") - getattr(
            self, f"locked_{status.value}_documents"
        )


def blockers(facts: AdministrationFacts) -> list[Blocker]:
    """What stops this administration from being offered, in checklist order."""
    found = [
        Blocker(BlockerKind.AUTHORIZERS_IN_FLOWS, facts.authorizer_steps),
        Blocker(BlockerKind.ACTIVE_WORKFLOWS, facts.active_workflows),
        Blocker(BlockerKind.UNDECIDED_DOCUMENTS, facts.pending_documents),
    ]
    return [b for b in found if b.count > 0]


def inbound_email(office_code: str, administration_code: str, mail_domain: str) -> str:
    """``<office code>.<administration code>@<mail domain>``, lower-case, safe characters only."""

    def part(value: str) -> str:
        cleaned = re.sub(r"[^a-z0-9-]+", "-", value.strip().lower()).strip("-")
        if not cleaned:
            raise ValueError(f"cannot build an e-mail address part from {value!r}")
        return cleaned

    return f"{part(office_code)}.{part(administration_code)}@{mail_domain.lower()}"


def is_read_only(state: AdministrationState) -> bool:
    """A migrated administration is kept for reference and never changes again."""
    return state is AdministrationState.MIGRATED


class DecisionError(ValueError):
    """A document decision that the rules do not allow."""


DECISIONS = {"approve": DocumentStatus.APPROVED, "reject": DocumentStatus.REJECTED}


def decision_status(action: str) -> DocumentStatus:
    """The status a decision action leads to; ``DecisionError`` for an unknown action."""
    try:
        return DECISIONS[action]
    except KeyError:
        raise DecisionError(f"unknown decision {action!r}") from None


# Magic numbers of the files a document may be: PDF or a common image format.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff_content_type(head: bytes) -> str | None:
    """The content type of a PDF or image from its first bytes, or ``None``.

    The file's own bytes decide, not its name or the browser's claim.
    """
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def safe_filename(filename: str) -> str:
    """A display filename without path parts or control characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or "document"
