"""APScheduler in a process of its own (``flask scheduler``), never inside ``create_app``.

Jobs call services inside an app context. Running two schedulers by accident is
harmless: every job claims its rows with conditional UPDATEs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from app.extensions import db

log = logging.getLogger(__name__)


def run_in_app(app: Flask, job: Callable[[], int], name: str) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            try:
                done = job()
                if done:
                    log.info("%s: %d done", name, done)
            except Exception:
                db.session.rollback()
                log.exception("%s failed; it runs again at its next turn", name)
            finally:
                db.session.remove()

    run.__name__ = name
    return run


def jobs() -> list[tuple[str, Callable[[], int], str]]:
    """(name, function, interval setting) of every scheduled job."""
    from app.migration_files.processing import process_imports
    from app.outbox import relay_outbox
    from app.transfers.jobs import (
        copy_claimed,
        remind_expiring,
        report_slow_copies,
        sweep_expired,
    )
    from app.uploads.jobs import expire_due as expire_uploads

    return [
        ("copy_claimed", copy_claimed, "SCHEDULER_COPY_SECONDS"),
        ("relay_outbox", relay_outbox, "SCHEDULER_RELAY_SECONDS"),
        ("process_imports", process_imports, "SCHEDULER_IMPORT_SECONDS"),
        ("sweep_expired", sweep_expired, "SCHEDULER_SWEEP_SECONDS"),
        ("remind_expiring", remind_expiring, "SCHEDULER_SWEEP_SECONDS"),
        ("report_slow_copies", report_slow_copies, "SCHEDULER_SWEEP_SECONDS"),
        ("expire_uploads", expire_uploads, "SCHEDULER_SWEEP_SECONDS"),
    ]


def run_all_once(app: Flask) -> None:
    """Every job once, in order (``flask scheduler --once``; used by tests too)."""
    for name, job, _setting in jobs():
        run_in_app(app, job, name)()


def build_scheduler(app: Flask) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC")
    for name, job, setting in jobs():
        scheduler.add_job(
            run_in_app(app, job, name),
            "interval",
            seconds=app.config[setting],
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            next_run_time=None,
        )
    return scheduler
