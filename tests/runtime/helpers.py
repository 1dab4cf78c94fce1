"""What the runtime tests share: `plume` run as an operator runs it, and an application
started as `plume serve` starts it (its lifespan builds its engine)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from httpx import AsyncClient

from plume.app import create_app
from tests.support.clients import running
from tests.support.processes import PLUME
from tests.support.settings import make_settings

KEY = re.compile(r"^plm_[A-Za-z0-9_-]{43,128}$")


def live(database_url: str) -> AsyncIterator[AsyncClient]:
    return running(create_app(make_settings(database_url)))  # type: ignore[return-value]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def out_lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


async def plume(command: str, *more: str, env: dict[str, str], cwd: Path) -> Result:
    """Run `plume <command split on spaces> <more...>`."""
    process = await asyncio.create_subprocess_exec(
        PLUME,
        *command.split(),
        *more,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


def the_key(result: Result) -> str:
    """The command succeeded and printed one key alone on standard output."""
    assert result.returncode == 0, result.stderr
    assert len(result.out_lines) == 1, result.stdout
    assert KEY.match(result.out_lines[0]), result.stdout
    return result.out_lines[0]
