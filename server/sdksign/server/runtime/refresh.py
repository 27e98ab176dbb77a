"""Keeping the configuration current while serving: a reload on SIGHUP, and the secrets
of the apps with secret_vault read again from Vault every [vault] refresh.

Both read (the file, Vault) in a daemon thread of their own, so that the event loop goes
on serving while they wait, and a process that stops does not wait for a read stalled on
Vault. One runs at a time, and each ends by replacing `service.config` in one
assignment, so calls in flight keep the configuration they started with. SIGHUPs that
come while a reload waits or reads fold into one more reload at most; once the server
is stopping, none starts. A read that fails changes nothing: the secrets already read
go on serving, and one error line says why (never with a token or a secret).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

from ..config import Config, ConfigError, config_warnings, load_config, vault_refreshed
from ..observe import metrics
from .service import SignatureService

log = structlog.get_logger("sdksign")

T = TypeVar("T")


async def in_reader_thread(work: Callable[[], T]) -> T:
    """`work()` in a daemon thread of its own; the loop serves meanwhile.

    Not the loop's default executor: asyncio.run and the interpreter's exit wait for
    its threads, so a read stalled on Vault would hold a stopping process up to
    [vault] request_timeout. A daemon thread ends with the process; when the caller
    is cancelled, its thread ends alone and what it read is dropped.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()  # the log fields bound here (the worker's)

    def read() -> None:
        try:
            result = context.run(work)
        except BaseException as exc:  # to the awaiting task, whatever it is
            settle = functools.partial(_reject, done, exc)
        else:
            settle = functools.partial(_resolve, done, result)
        with contextlib.suppress(RuntimeError):  # the loop has closed: the process is stopping
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=read, name="sdksign-reader", daemon=True).start()
    return await done


def _resolve(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(result)


def _reject(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def read_again(config: Config) -> Config | ConfigError:
    """The configuration read again from where `config` came from, or why it cannot be."""
    try:
        return load_config(config.path)
    except ConfigError as exc:
        return exc


def vault_read_again(config: Config) -> Config:
    """`config` with its Vault secrets read again; as it is, after an error line, when they
    cannot be read."""
    try:
        return vault_refreshed(config)
    except ConfigError as exc:
        log.error("vault refresh failed: still serving the secrets already read", error=str(exc))
        return config


def refresh_interval(config: Config) -> int:
    """Seconds between Vault reads while serving; 0 when there is nothing to read."""
    if config.vault is None or not any(app.vault for app in config.apps):
        return 0
    return config.vault.refresh


def log_warnings(config: Config) -> None:
    """A warning line for each of config_warnings(`config`), as a changed configuration is
    served (a new file or a new Vault version may hold a wrong value)."""
    for warning in config_warnings(config):
        log.warning(warning)


def rotated(old: Config, new: Config) -> list[str]:
    """Each app of both whose secrets changed, by fingerprint: the signing one first."""
    before = {app.name: app.secret_fingerprints for app in old.apps}
    return [
        f"{app.name} (secrets {', '.join(app.secret_fingerprints)})"
        for app in new.apps
        if before.get(app.name, app.secret_fingerprints) != app.secret_fingerprints
    ]


class Refresher:
    """SIGHUP reloads and Vault refreshes for one server process, one at a time.

    `apply_reload` takes what a reload read (a Config, or the ConfigError that stopped
    it) and decides whether to serve it (runtime.serve.reload).
    """

    def __init__(
        self, service: SignatureService, apply_reload: Callable[[Config | ConfigError], None]
    ) -> None:
        self._service = service
        self._apply_reload = apply_reload
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None  # the reloads of SIGHUPs, in turn
        self._reload_due = False  # a SIGHUP came whose reload has not started reading
        self._stopping = False

    def start(self) -> None:
        """Read Vault again every [vault] refresh (nothing to do without secret_vault)."""
        if self._refreshing is not None:
            self._refreshing.cancel()
        interval = 0 if self._stopping else refresh_interval(self._service.config)
        self._refreshing = self._spawn(self._refresh_every(interval)) if interval else None

    def sighup(self) -> None:
        """The SIGHUP handler: a reload, once any read under way is done. A SIGHUP while
        one is due already folds into it; none once the server is stopping."""
        if self._stopping:
            then = "none: stopping"
        elif self._reload_due:
            then = "already queued"
        else:
            self._reload_due = True
            then = "queued after the one under way"
            if self._reloading is None:
                self._reloading = self._spawn(self._reloads())
                then = "queued"
        log.info("SIGHUP received", reload=then)

    async def stop(self) -> None:
        """From now on no reload or refresh starts; one under way is dropped (its thread
        ends alone, and the process does not wait for it)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def refresh(self) -> None:
        """Read the Vault secrets again now; serve them if any changed."""
        async with self._lock:
            old = self._service.config
            new = await in_reader_thread(functools.partial(vault_read_again, old))
            if changed := rotated(old, new):
                self._service.config = new
                log.info("secrets rotated", apps=changed)
                log_warnings(new)
                metrics.secrets_served(new)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _reloads(self) -> None:
        """Reload while a SIGHUP is due: those that come during a reload make one more."""
        try:
            while self._reload_due:
                async with self._lock:
                    self._reload_due = False  # SIGHUPs from now on: the file may change again
                    await self._reload()
        finally:
            self._reloading = None

    async def _reload(self) -> None:
        old = self._service.config
        self._apply_reload(await in_reader_thread(functools.partial(read_again, old)))
        if changed := rotated(old, self._service.config):
            log.info("secrets rotated", apps=changed)
        self.start()  # the refresh interval anew, perhaps a new one

    async def _refresh_every(self, interval: int) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.refresh()
