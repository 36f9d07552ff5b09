"""``agenthq-dev``: the commands behind ``make run`` and ``make docs``.

agenthq-dev check      are PostgreSQL, Redis and RabbitMQ reachable?
agenthq-dev migrate    create each service's database if missing and migrate it
agenthq-dev run        start all six services; Ctrl-C stops them all
agenthq-dev docs       write docs/asyncapi.json and docs/configuration.md
agenthq-dev chaos      failure drills on private servers (docs/failure-drills.md)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import httpx

from agenthq_common.migrations import create_database_if_missing, upgrade
from agenthq_common.settings import ServiceSettings
from agenthq_devctl.checks import check_dependencies
from agenthq_devctl.services import SERVICES, settings_class
from agenthq_devctl.supervisor import Stack


def say(message: str = "") -> None:
    print(message, flush=True)


def cmd_check(_: argparse.Namespace) -> int:
    statuses = asyncio.run(check_dependencies(ServiceSettings()))
    for status in statuses:
        mark = "ok  " if status.ok else "DOWN"
        say(f"  [{mark}] {status.name:<10} {status.url}")
    down = [s for s in statuses if not s.ok]
    if down:
        say()
        for status in down:
            say(f"{status.name} is not reachable ({status.error}).")
            say(f"  Start it with:  {status.how_to_start}")
            say("  or point the AGENTHQ_* URL (see README, Configuration) at a running one.")
        return 1
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    services = args.service or list(SERVICES)
    for service in services:
        settings = settings_class(service)()
        assert settings.database_url is not None
        started = time.perf_counter()
        created = asyncio.run(create_database_if_missing(settings.database_url))
        say(f"  {service:<10} database {'created' if created else 'exists '}; migrating ...")
        upgrade(service, settings.database_url)
        say(f"  {service:<10} at head ({time.perf_counter() - started:.1f}s)")
    return 0


async def _run(log_dir: Path, replicas: int = 1) -> int:
    stack = Stack(log_dir=log_dir, replicas=replicas)
    copies = f", {replicas} of each behind HAProxy" if replicas > 1 else ""
    say(f"Starting {len(SERVICES)} services{copies}; logs in {log_dir}/<service>.log ...")
    await stack.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stack.wait_ready(
            on_ready=lambda name: say(f"  ready: {name}"),
            on_waiting=lambda names: say(f"  still starting: {', '.join(names)}"),
        )
    except (RuntimeError, TimeoutError) as exc:
        say(f"\nStartup failed: {exc}")
        await stack.stop()
        return 1
    gateway = f"http://127.0.0.1:{stack.ports['gateway']}"
    realtime = f"ws://127.0.0.1:{stack.ws_port}"
    say()
    say("AgentHQ collaboration backend is up.")
    say(f"  Gateway (public API)  {gateway}")
    say(f"  Interactive API docs  {gateway}/docs   (OpenAPI: {gateway}/openapi.json)")
    say(f"  Realtime WebSocket    {realtime}/ws/teams/<team_id>")
    for name, proc in stack.processes.items():
        say(f"  {name:<9} {proc.url}  health {proc.url}/readyz  metrics {proc.url}/metrics")
    say(f"  Logs                  {log_dir}/<service>.log")
    say("Press Ctrl-C to stop all services.")
    exited = asyncio.create_task(stack.wait_any_exit())
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if exited in done:
        proc = exited.result()
        say(f"\n{proc.name} exited unexpectedly; last lines of {proc.log_path}:\n{proc.log_tail()}")
        code = 1
    else:
        exited.cancel()
    say("Stopping all services ...")
    await stack.stop()
    say("Stopped.")
    return code


def cmd_run(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(Path(args.log_dir), args.replicas))
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from agenthq_devctl.docs import write_docs

    for path in write_docs(Path(args.out)):
        say(f"  wrote {path}")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from agenthq_devctl.openapi import write_document

    say(f"  wrote {write_document(Path(args.out))}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from agenthq_devctl.demo import DemoError, build, logins_text

    settings = ServiceSettings()
    say(f"Filling the system at {args.gateway} with demo data ...")
    try:
        result = asyncio.run(
            build(
                args.gateway,
                settings.broker_url,
                settings.bus_namespace,
                events_per_team=args.events_per_team,
                days=args.days,
                say=say,
            )
        )
    except (DemoError, httpx.HTTPError, OSError) as exc:
        say(f"Demo failed: {exc}\nIs the system running (`make run` in another terminal)?")
        return 1
    say(f"Done: {result['published']:,} agent events published; the activity log and usage")
    say("fill in as the services consume them (a few seconds).")
    say(logins_text(result, args.gateway))
    return 0


def cmd_screenshots(args: argparse.Namespace) -> int:
    from agenthq_devctl.screenshots import take

    dist = Path(args.dist).resolve()
    if not (dist / "index.html").is_file():
        say(f"No console build in {dist}: run `make web` first.")
        return 1
    say("Taking screenshots of every page (a scratch system, the demo, Chromium) ...")
    saved = asyncio.run(take(Path(args.out), dist, say=say))
    say(f"Saved {len(saved)} screenshots in {args.out}/")
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    import dataclasses
    import logging
    import shutil

    from agenthq_devctl.chaos import DRILLS, PROFILES, run_drills, summary_table
    from agenthq_devctl.private_infra import PrivateInfraError, make_root

    # The drills' own producer reconnects through the broker restart: its
    # client library's tracebacks about it are expected, not news.
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    profile = PROFILES[args.profile]
    if args.down is not None:
        profile = dataclasses.replace(
            profile, rabbit_down=args.down, redis_down=args.down, postgres_down=args.down
        )
    drills = args.drill or list(DRILLS)
    root = make_root()
    say(
        f"Failure drills ({profile.name} form, {args.repeat} round(s)): {', '.join(drills)}; "
        "private servers on loopback, the machine's own are not touched."
    )
    started = time.perf_counter()
    try:
        results, startup = asyncio.run(
            run_drills(root, drills, profile, repeat=args.repeat, say=say)
        )
    except KeyboardInterrupt:
        say(f"Interrupted; everything started was stopped. Logs in {root}")
        return 130
    except (PrivateInfraError, RuntimeError, TimeoutError, OSError) as exc:
        say(f"The drills could not run: {exc}\nLogs in {root}")
        return 1
    say()
    say(summary_table(results))
    say()
    say(
        "Startup: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in startup.items())
        + f"; total {time.perf_counter() - started:.0f}s"
    )
    failed = [r for r in results if not r.passed]
    if failed or args.keep:
        say(f"Logs (services, HAProxy, PostgreSQL, Redis, RabbitMQ) kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    if failed:
        say(f"{len(failed)} of {len(results)} drill run(s) FAILED:")
        for result in failed:
            say(result.report())
        return 1
    say(f"All {len(results)} drill run(s) passed.")
    return 0


def cmd_k8s(args: argparse.Namespace) -> int:
    from agenthq_devctl.k8s import write_base

    for path in write_base(Path(args.out)):
        say(f"  wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agenthq-dev",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="check PostgreSQL, Redis and RabbitMQ").set_defaults(fn=cmd_check)
    migrate = sub.add_parser("migrate", help="create and migrate each service's database")
    migrate.add_argument("--service", action="append", choices=SERVICES)
    migrate.set_defaults(fn=cmd_migrate)
    run = sub.add_parser("run", help="start all services; Ctrl-C stops them")
    run.add_argument("--log-dir", default=".run/logs")
    run.add_argument(
        "--replicas", type=int, default=1, help="processes per service (HAProxy in front)"
    )
    run.set_defaults(fn=cmd_run)
    docs = sub.add_parser("docs", help="write generated documentation")
    docs.add_argument("--out", default="docs")
    docs.set_defaults(fn=cmd_docs)
    demo = sub.add_parser("demo", help="fill the running system with demo teams and history")
    demo.add_argument("--gateway", default="http://127.0.0.1:8000")
    demo.add_argument("--events-per-team", type=int, default=1500)
    demo.add_argument("--days", type=int, default=30)
    demo.set_defaults(fn=cmd_demo)
    shots = sub.add_parser("screenshots", help="a PNG of every console page, desktop and phone")
    shots.add_argument("--out", default="docs/screenshots")
    shots.add_argument("--dist", default="web/dist")
    shots.set_defaults(fn=cmd_screenshots)
    chaos = sub.add_parser(
        "chaos", help="failure drills on private servers: kill replicas, restart the broker, ..."
    )
    chaos.add_argument(
        "--drill",
        action="append",
        choices=["kill-replicas", "rabbitmq-restart", "redis-restart", "postgres-stop"],
        help="run only this drill (repeatable; default: all)",
    )
    chaos.add_argument("--profile", choices=["short", "long"], default="long")
    chaos.add_argument("--repeat", type=int, default=1, help="rounds of every drill")
    chaos.add_argument(
        "--down",
        type=float,
        help="seconds RabbitMQ, Redis and PostgreSQL stay down (default: the profile's)",
    )
    chaos.add_argument("--keep", action="store_true", help="keep the logs even when all pass")
    chaos.set_defaults(fn=cmd_chaos)
    k8s = sub.add_parser("k8s", help="write the Kubernetes base (deploy/k8s/base) from the code")
    k8s.add_argument("--out", default="deploy/k8s/base")
    k8s.set_defaults(fn=cmd_k8s)
    openapi = sub.add_parser("openapi", help="write the gateway's merged OpenAPI document")
    openapi.add_argument("--out", default="web/openapi.json")
    openapi.set_defaults(fn=cmd_openapi)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
