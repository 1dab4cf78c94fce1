"""The `plume` command: serve, migrate, bootstrap, demo and operator tasks.

Results go to standard output, logs to standard error; errors end with one line and a
non-zero status.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import structlog
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit import trail as audit
from plume.config import ConfigurationError, Settings, load_settings
from plume.credentials.schemas import ApiKeyCreated
from plume.credentials.secrets import KeyHasher
from plume.credentials.service import ApiKeyService
from plume.db import TenantScope, create_engine, create_session_factory, enter_tenant_context
from plume.errors import PlumeError
from plume.models import ApiKeyRole
from plume.organizations.schemas import OrganizationCreate
from plume.organizations.service import OrganizationService
from plume.quotas.defaults import DefaultQuotaService, given_details
from plume.runtime.log import configure_logging

T = TypeVar("T")
logger = structlog.get_logger("plume.cli")


class CommandError(Exception):
    """A failure to report in one line."""


def _run_in_transaction(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, as_owner: bool = False
) -> T:
    """Run `work` in one transaction with the system's scope (operator tasks): as the
    application role, in the system's tenant context; or `as_owner`, with the connection's
    own role (which must own the tables: only `plume audit purge`), its work entering the
    scope it needs itself."""

    async def runner() -> T:
        engine = create_engine(settings.require_database_url(), pool_size=1)
        try:
            factory = create_session_factory(engine)
            async with factory() as session, session.begin():
                if not as_owner:
                    await enter_tenant_context(session, TenantScope.everything())
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(runner())


def _hasher(settings: Settings) -> KeyHasher:
    return KeyHasher.from_secret(settings.require_secret_key())


async def _audit_key_created(
    session: AsyncSession, organization_id: uuid.UUID, minted: ApiKeyCreated
) -> None:
    await audit.record(
        session,
        organization_id=organization_id,
        action="api_key.create",
        actor=audit.Actor.system(),
        target=("api_key", str(minted.id)),
        details=audit.key_details(minted.name, minted.role, minted.prefix),
    )


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> None:
    from plume.audit import chain
    from plume.audit.service import chain_ids, verify

    async def work(session: AsyncSession) -> list[tuple[str, chain.Verification]]:
        system = TenantScope.everything()
        organizations = OrganizationService(session, system)
        if args.organization:
            targets = [await organizations.resolve(args.organization)]
        else:
            targets = [await organizations.get(i) for i in await chain_ids(session)]
        return [(o.slug, await verify(session, o.id, system)) for o in targets]

    results = _run_in_transaction(settings, work)
    for slug, result in results:
        if result.valid:
            print(f"{slug}\tvalid\t{result.checked} entries")
        else:
            print(f"{slug}\tINVALID\tfirst invalid entry: {result.first_invalid_seq}")
    if any(not result.valid for _, result in results):
        raise CommandError("at least one audit chain does not verify (see above)")


def cmd_audit_purge(settings: Settings, args: argparse.Namespace) -> None:
    from datetime import date

    from plume.audit.service import purge

    try:
        before = date.fromisoformat(args.before)
    except ValueError:
        raise CommandError(f"--before: not a date (YYYY-MM-DD): {args.before}") from None

    async def work(session: AsyncSession) -> list[str]:
        return [
            f"{organization}\t{count} entries purged"
            for organization, count in await purge(session, before)
        ]

    lines = _run_in_transaction(settings, work, as_owner=True)
    for line in lines:
        print(line)
    if not lines:
        print(f"nothing older than {before.isoformat()}")


def cmd_retention_run(settings: Settings, args: argparse.Namespace) -> None:
    from plume.drafting.retention import run_once

    try:
        at = datetime.fromisoformat(args.at).astimezone(UTC) if args.at else None
    except ValueError:
        raise CommandError(f"--at: not an ISO-8601 date and time: {args.at}") from None
    print("\n".join(asyncio.run(run_once(settings, at))))


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from plume.runtime.migrations import upgrade

    upgrade(settings.require_database_url())
    print("migrations applied")


def cmd_bootstrap(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> str:
        system = TenantScope.everything()
        operator, created = await OrganizationService(session, system).ensure_operator()
        logger.info("operator_ready", organization_id=str(operator.id), created=created)
        minted = await ApiKeyService(session, system, _hasher(settings)).mint(
            operator, name=args.name, role=ApiKeyRole.OPERATOR_ADMIN
        )
        await _audit_key_created(session, operator.id, minted)
        return minted.key

    print(_run_in_transaction(settings, work))


def cmd_orgs_create(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> str:
        service = OrganizationService(session, TenantScope.everything())
        parent_id = (await service.resolve(args.parent)).id if args.parent else None
        payload = OrganizationCreate(
            kind=args.kind,
            name=args.name,
            parent_id=parent_id,
            insee_code=args.insee_code,
            siren=args.siren,
        )
        o = await service.create(payload)
        trail = audit.AuditTrail(session, audit.Actor.system())
        target = ("organization", str(o.id))
        view = await service.admin_view(o)
        await trail.record(o.id, "organization.create", target, view.created_details())
        # The operator's defaults for its kind, as for an organisation created by the API.
        if given := await DefaultQuotaService(session).apply(o):
            await trail.record(o.id, "quota.update", target, given_details(given))
        return f"{o.id}\t{o.kind.value}\t{o.slug}\t{o.name}"

    print(_run_in_transaction(settings, work))


def cmd_orgs_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> list[str]:
        service = OrganizationService(session, TenantScope.everything())
        organizations = await service.list_all()
        return [
            f"{o.id}\t{o.kind.value}\t{o.slug}\t{o.status.value}\t{o.name}" for o in organizations
        ]

    for line in _run_in_transaction(settings, work):
        print(line)


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> str:
        system = TenantScope.everything()
        organization = await OrganizationService(session, system).resolve(args.organization)
        expires_at = datetime.fromisoformat(args.expires_at) if args.expires_at else None
        if expires_at is not None and expires_at.tzinfo is None:
            raise CommandError("--expires-at: give an offset, e.g. 2027-01-31T23:59:00+01:00")
        minted = await ApiKeyService(session, system, _hasher(settings)).mint(
            organization, name=args.name, role=ApiKeyRole(args.role), expires_at=expires_at
        )
        await _audit_key_created(session, organization.id, minted)
        logger.info("api_key_created", key_id=str(minted.id), organization=organization.slug)
        return minted.key

    print(_run_in_transaction(settings, work))


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async def work(session: AsyncSession) -> str:
        key = await ApiKeyService(session, TenantScope.everything(), _hasher(settings)).revoke(
            uuid.UUID(args.key_id)
        )
        await audit.record(
            session,
            organization_id=key.organization_id,
            action="api_key.revoke",
            actor=audit.Actor.system(),
            target=("api_key", str(key.id)),
            details=audit.key_details(key.name, key.role.value, key.prefix),
        )
        return f"{key.id}\trevoked"

    try:
        uuid.UUID(args.key_id)
    except ValueError:
        raise CommandError(f"not a key id: {args.key_id}") from None
    print(_run_in_transaction(settings, work))


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> None:
    from plume.credentials.service import key_out
    from plume.web.pagination import MAX_LIMIT, PageRequest

    async def work(session: AsyncSession) -> list[str]:
        system = TenantScope.everything()
        organization = await OrganizationService(session, system).resolve(args.organization)
        keys = await ApiKeyService(session, system, _hasher(settings)).list_page(
            organization.id, PageRequest(limit=MAX_LIMIT, after=None)
        )
        return [f"{k.id}\t{k.prefix}…\t{k.role}\t{k.status}\t{k.name}" for k in map(key_out, keys)]

    for line in _run_in_transaction(settings, work):
        print(line)


def _exit_cleanly_after_drain() -> None:
    """uvicorn drains on SIGTERM/SIGINT, then re-raises the signal with the previous
    handlers: make those end the process with status 0, as a successful stop."""

    def stop(signum: int, frame: object) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _multiprocess_metrics(settings: Settings, port: int) -> None:
    """Workers write their metrics to files that /metrics adds up; the directory starts empty
    so that a previous run's counts are not served again."""
    import shutil

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(
        (settings.state_dir / f"metrics-{port}").resolve()
    )
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What `plume serve` and `plume demo` tell uvicorn besides the address: X-Forwarded-For
    and X-Forwarded-Proto are believed only from PLUME_TRUSTED_PROXIES (none by default, so
    the client address is the peer's)."""
    proxies = settings.trusted_proxies
    return {
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": ",".join(proxies) if proxies else None,
        "timeout_graceful_shutdown": settings.drain_timeout_s,
        "log_config": None,
        "server_header": False,
    }


def _public_url(settings: Settings, host: str, port: int) -> str:
    """PLUME_PUBLIC_URL, by default the server itself: links (problem types) point there.
    Set in the environment, which workers read."""
    if settings.public_url is not None:
        return settings.public_url
    local = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    if ":" in local:
        local = f"[{local}]"
    os.environ["PLUME_PUBLIC_URL"] = url = f"http://{local}:{port}"
    return url


def _serve_metrics_port(settings: Settings) -> None:
    """With PLUME_METRICS_PORT, /metrics is served on that port alone (PLUME_METRICS_HOST,
    127.0.0.1 by default), from a thread of this process, and not by the API: with several
    workers this process is their supervisor, and it adds up their files."""
    if settings.metrics_port is None:
        return
    from prometheus_client import REGISTRY, start_http_server

    from plume.metrics.registry import multiprocess, multiprocess_registry

    registry = multiprocess_registry() if multiprocess() else REGISTRY
    try:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    except OSError as exc:
        where = f"{settings.metrics_host}:{settings.metrics_port}"
        message = f"PLUME_METRICS_PORT: cannot listen on {where}: {exc.strerror}"
        raise CommandError(message) from None
    logger.info("metrics_served", host=settings.metrics_host, port=settings.metrics_port)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from plume.routing.config import load_routing
    from plume.runtime.draining import serve

    settings.require_database_url()
    settings.require_secret_key()
    load_routing(settings.models_file)  # a bad routing file stops start-up here, in one line
    # A metrics port is served by this process: the workers' counts reach it through files.
    if args.workers > 1 or settings.metrics_port is not None:
        _multiprocess_metrics(settings, args.port)
    _public_url(settings, args.host, args.port)
    _serve_metrics_port(settings)
    _exit_cleanly_after_drain()
    # Workers are separate processes: they rebuild the app from the same environment.
    serve(
        "plume.app:served_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        delay_s=settings.drain_delay_s,
        # A worker imports LiteLLM before it can answer the supervisor's health check: that
        # takes several seconds on a busy machine, past uvicorn's 5 s default, which would
        # kill and respawn workers for ever.
        timeout_worker_healthcheck=60,
        **uvicorn_options(settings),
    )


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from plume.app import create_app
    from plume.routing.config import load_routing
    from plume.runtime import demo
    from plume.runtime.migrations import upgrade

    if settings.is_production:
        # The demo revokes every key named "demo: …" and mints keys it prints.
        raise ConfigurationError("PLUME_ENV: plume demo does not run in production")
    load_routing(settings.models_file)
    if settings.database_url is None:
        from plume.runtime.embedded import start_embedded_postgres

        url = start_embedded_postgres(settings.state_dir / "pgdata")
        os.environ["PLUME_DATABASE_URL"] = url
        settings = settings.model_copy(update={"database_url": url})
    url = settings.require_database_url()
    upgrade(url)

    async def seed(session: AsyncSession) -> list[demo.DemoKey]:
        return await demo.seed_demo(session, _hasher(settings))

    keys = _run_in_transaction(settings, seed)
    base = f"http://{args.host}:{args.port}"
    print("Plume demo: fresh keys (the previous demo keys are revoked)\n")
    for key in keys:
        print(f"  {key.organization} ({key.slug}), {key.role}:\n    {key.key}")
    agent = next(k for k in keys if k.role == "agent")
    auth = f"-H 'Authorization: Bearer {agent.key}'"
    print(f"\nTry:\n  curl -s {auth} {base}/v1/organization")
    print(
        f"  curl -s {auth} -H 'Content-Type: application/json' "
        f"-d @docs/examples/requests/arrete-course-cycliste.json {base}/v1/drafts\n"
    )
    print(f"API documentation: {base}/docs\nCtrl-C stops the service.\n", flush=True)

    import uvicorn

    settings = settings.model_copy(
        update={"public_url": _public_url(settings, args.host, args.port)}
    )
    _serve_metrics_port(settings)
    _exit_cleanly_after_drain()
    app = create_app(settings, served=True)
    uvicorn.run(app, host=args.host, port=args.port, **uvicorn_options(settings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plume", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API (production entry point)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser("migrate", help="apply migrations to PLUME_DATABASE_URL").set_defaults(
        handler=cmd_migrate
    )

    bootstrap = commands.add_parser(
        "bootstrap", help="create the operator if missing; print a new operator_admin key"
    )
    bootstrap.add_argument("--name", default="bootstrap")
    bootstrap.set_defaults(handler=cmd_bootstrap)

    demo = commands.add_parser("demo", help="embedded database, demo tenants and keys, serve")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(handler=cmd_demo)

    orgs = commands.add_parser("orgs", help="organisations").add_subparsers(
        dest="orgs_command", required=True
    )
    create = orgs.add_parser("create", help="create an EPCI or a commune")
    create.add_argument("--kind", choices=["epci", "commune"], required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--parent", help="parent id or slug (default: the operator)")
    create.add_argument("--insee-code")
    create.add_argument("--siren")
    create.set_defaults(handler=cmd_orgs_create)
    orgs.add_parser("list", help="list organisations").set_defaults(handler=cmd_orgs_list)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True
    )
    key_create = keys.add_parser("create", help="mint a key; prints it alone")
    key_create.add_argument("--organization", required=True, help="id or slug")
    key_create.add_argument("--role", choices=[r.value for r in ApiKeyRole], required=True)
    key_create.add_argument("--name", required=True)
    key_create.add_argument("--expires-at", help="RFC 3339 date and time with offset")
    key_create.set_defaults(handler=cmd_keys_create)
    key_revoke = keys.add_parser("revoke", help="revoke a key by id")
    key_revoke.add_argument("key_id")
    key_revoke.set_defaults(handler=cmd_keys_revoke)
    key_list = keys.add_parser("list", help="list an organisation's keys (never secrets)")
    key_list.add_argument("--organization", required=True, help="id or slug")
    key_list.set_defaults(handler=cmd_keys_list)

    audit_commands = commands.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit_commands.add_parser("verify", help="verify hash chains (all by default)")
    verify.add_argument("--organization", help="id or slug of one organisation")
    verify.set_defaults(handler=cmd_audit_verify)
    purge = audit_commands.add_parser(
        "purge", help="delete entries older than a date, leaving a checkpoint per chain"
    )
    purge.add_argument("--before", required=True, help="YYYY-MM-DD (midnight, Paris time)")
    purge.set_defaults(handler=cmd_audit_purge)
    retention = commands.add_parser("retention", help="erase drafts past their retention")
    run = retention.add_subparsers(dest="retention_command", required=True).add_parser("run")
    run.add_argument("--at", help="ISO-8601 moment to count retention from (default: now)")
    run.set_defaults(handler=cmd_retention_run)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(serving=args.command in {"serve", "demo"})
        configure_logging(settings.log_level)
        args.handler(settings, args)
    except ConfigurationError as exc:
        print(f"plume: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except PlumeError as exc:
        field = f" ({exc.errors[0].field})" if exc.errors else ""
        print(f"plume: error{field}: {exc.detail}", file=sys.stderr)
        sys.exit(1)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        print(f"plume: error ({field}): {message}", file=sys.stderr)
        sys.exit(1)
    except CommandError as exc:
        print(f"plume: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except (sa_exc.OperationalError, sa_exc.InterfaceError, psycopg.OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        print(f"plume: error: the database cannot be reached: {reason}", file=sys.stderr)
        sys.exit(1)
    except ValueError as exc:
        print(f"plume: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
