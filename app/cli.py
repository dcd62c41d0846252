"""Command-line entry points. Each command calls a service and owns the commit."""

from __future__ import annotations

import contextlib
import os
from contextlib import contextmanager

import click
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.web import unit_of_work


@click.group("users")
def users_group() -> None:
    """Manage users."""


@users_group.command("token")
@click.argument("email")
@click.option("--name", default="command line", show_default=True, help="What the token is for.")
def users_token(email: str, name: str) -> None:
    """Print a new personal API token for the user with EMAIL."""
    from app.auth import services
    from app.auth.models import User

    user = db.session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).one_or_none()
    if user is None:
        raise click.ClickException(f"No user with e-mail address {email}.")
    with unit_of_work():
        _row, token = services.create_api_token(user, name, origin="cli")
    click.echo(token)


@click.command("demo")
@click.option("--reset", is_flag=True, help="Delete all data first and seed again.")
def demo_command(reset: bool) -> None:
    """Seed the demo offices, users, administrations and documents (idempotent), and
    write the desktop office's migration file for Zuid to import (instance/)."""
    from app.demo import demo_migration_file_path, seed_demo, write_demo_migration_file

    with unit_of_work():
        result = seed_demo(reset=reset, echo=click.echo)
    path = demo_migration_file_path()
    documents = write_demo_migration_file(path)
    click.echo(result)
    click.echo(
        f"\nMigratiebestand om te importeren: {os.path.relpath(path)} ({documents} documents)"
    )


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run every job once and exit.")
def scheduler_command(once: bool) -> None:
    """Run the scheduler (mail relay, expiry sweep, reminders) in this process."""
    import logging
    from datetime import UTC, datetime

    from flask import current_app

    from app.scheduler import build_scheduler, run_all_once

    app = current_app._get_current_object()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per run
    if once:
        run_all_once(app)
        return
    scheduler = build_scheduler(app)
    for job in scheduler.get_jobs():
        job.modify(next_run_time=datetime.now(UTC))
    click.echo("Scheduler running: " + ", ".join(j.id for j in scheduler.get_jobs()))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()


@click.group("transfers")
def transfers_group() -> None:
    """Support actions on transfers (the same services as the support console)."""


def _cli_origin() -> str:
    import getpass

    return f"cli {getpass.getuser()}"


@transfers_group.command("list")
@click.option("--stuck", is_flag=True, help="Only transfers that need support.")
@click.option(
    "--state",
    default=None,
    help="offered, claiming, completed, withdrawn, expired, revoked, failed",
)
@click.option("--limit", default=50, show_default=True)
def transfers_list(stuck: bool, state: str | None, limit: int) -> None:
    """List transfers of every environment, newest first."""
    from flask_babel import gettext

    from app.errors import ServiceError
    from app.support import services

    try:
        page = services.list_transfers(None, stuck=stuck, state=state, per_page=limit)
    except ServiceError as error:
        raise click.ClickException(error.translated()) from None
    if not page.items:
        click.echo("No transfers." if not stuck else "Nothing is stuck.")
    for row in page.items:
        t = row.transfer
        items = ", ".join(f"{i.administration_name} [{i.state.value}]" for i in t.items)
        click.echo(
            f"#{t.id}  {t.created_at:%Y-%m-%d %H:%M}  {row.state:<10} "
            f"{t.source_environment.name} -> "
            f"{t.target_environment.name if t.target_environment else ', '.join(t.recipient_emails)}"
            f"  {items}"
        )
        for reason in row.reasons:
            click.echo("      why: " + gettext(services.REASONS[reason.kind], **reason.params))
    click.echo(f"{len(page.items)} of {page.total} shown.")


@transfers_group.command("revoke")
@click.argument("transfer_id", type=int)
@click.option("--reason", required=True, help="Why; both offices receive it.")
def transfers_revoke(transfer_id: int, reason: str) -> None:
    """Revoke transfer TRANSFER_ID."""
    from app.support import services

    with _cli_unit_of_work(transfer_id):
        services.revoke(None, transfer_id, reason, origin=_cli_origin())
    click.echo(f"Transfer #{transfer_id} revoked.")


@transfers_group.command("retry")
@click.argument("transfer_id", type=int)
def transfers_retry(transfer_id: int) -> None:
    """Queue the failed copies of transfer TRANSFER_ID again."""
    from app.support import services

    with _cli_unit_of_work(transfer_id):
        n = services.retry(None, transfer_id, origin=_cli_origin())
    click.echo(f"{n} failed copy(ies) of transfer #{transfer_id} queued again.")


@contextmanager
def _cli_unit_of_work(transfer_id: int):
    """The command's unit of work; a refusal becomes the command's error message."""
    from app.errors import ServiceError

    try:
        with unit_of_work():
            yield
    except ServiceError as error:
        if error.status == 404:
            raise click.ClickException(f"No transfer #{transfer_id}.") from None
        raise click.ClickException(error.translated()) from None


def register(app: Flask) -> None:
    app.cli.add_command(users_group)
    app.cli.add_command(demo_command)
    app.cli.add_command(scheduler_command)
    app.cli.add_command(transfers_group)
