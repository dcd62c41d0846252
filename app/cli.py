"""Command-line entry points. Each command calls a service and owns the commit."""

from __future__ import annotations

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


def register(app: Flask) -> None:
    app.cli.add_command(users_group)
    app.cli.add_command(demo_command)
