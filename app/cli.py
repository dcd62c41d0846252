"""Command-line entry points. Each command calls a service and owns the commit."""

from __future__ import annotations

import contextlib

import click
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db


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
    _row, token = services.create_api_token(user, name, origin="cli")
    db.session.commit()
    click.echo(token)


@click.command("demo")
@click.option("--reset", is_flag=True, help="Delete all data first and seed again.")
def demo_command(reset: bool) -> None:
    """Seed the demo offices, users, administrations and documents (idempotent)."""
    from app.demo import seed_demo

    result = seed_demo(reset=reset, echo=click.echo)
    db.session.commit()
    click.echo(result)


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
    if once:
        run_all_once(app)
        return
    scheduler = build_scheduler(app)
    for job in scheduler.get_jobs():
        job.modify(next_run_time=datetime.now(UTC))
    click.echo("Scheduler running: " + ", ".join(j.id for j in scheduler.get_jobs()))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()


def register(app: Flask) -> None:
    app.cli.add_command(users_group)
    app.cli.add_command(demo_command)
    app.cli.add_command(scheduler_command)
