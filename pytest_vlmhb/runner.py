"""The per-process runtime: servers, per-case dispatch ahead of the items, records.

pytest runs items one at a time, but a batching server wants many requests
at once. So the first item of a case starts a dispatcher on a background
event loop that sends all of the case's samples (bounded by ``concurrency``),
and each item only waits for its own sample's future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import aiohttp

from . import documents, registry
from .backends.base import Backend
from .cases import Plan
from .chat_request import chat_body
from .client import Completion, RetryableError, StreamError, stream_chat
from .config import Case, Settings
from .envs import Progress
from .errors import SampleError, ServerError, VlmhbError
from .launchers.base import Launcher, RunningServer, log_tail
from .records import (
    CaseInfo,
    PrepStats,
    Record,
    ServerInfo,
    StoredRecord,
    make_record,
    rescore,
)
from .servermetrics import ServerWatch, fetch_metrics_text, scrape_metrics
from .store import ResultStore, case_info_entry, load_store, record_key
from .tasks.manifest import Sample

T = TypeVar("T")


class LoopThread:
    """One asyncio event loop in a daemon thread, for all dispatchers of a process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="vlmhb-loop", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class ServerPool:
    """At most one running server per process; switching stops the previous one."""

    def __init__(self, settings: Settings, progress: Progress) -> None:
        self.settings = settings
        self.progress = progress
        self._key: str | None = None
        self._server: RunningServer | None = None
        self._failed: dict[str, ServerError] = {}

    def get(self, case: Case) -> RunningServer:
        key = case.server_key
        if key in self._failed:
            raise self._failed[key]
        if self._key == key and self._server is not None:
            return self._server
        self.stop()
        backend: Backend = registry.load(registry.BACKENDS, case.backend)()
        launcher: Launcher = registry.load(registry.LAUNCHERS, case.launcher)()
        try:
            self._server = launcher.start(backend, case.model, self.settings, self.progress)
        except VlmhbError as exc:
            error = ServerError(f"server {key} failed to start: {exc}")
            self._failed[key] = error
            raise error from None
        self._key = key
        return self._server

    def restart(self, case: Case) -> RunningServer:
        """Stop the case's (dead) server and start a fresh one."""
        self.progress(f"restarting server {case.server_key}")
        self.stop()
        return self.get(case)

    @property
    def current(self) -> RunningServer | None:
        """The server running now, if any."""
        return self._server

    def stop(self) -> None:
        server, key = self._server, self._key
        self._server, self._key = None, None  # forgotten even if stopping fails
        if server is not None:
            self.progress(f"stopping server {key}")
            server.stop()


@dataclass(frozen=True)
class _Slots:
    """A case's request slots (``concurrency``), its window of samples prepared
    or in flight (twice that), and one event per sample set once it took its
    first send slot (or will never send)."""

    send: asyncio.Semaphore
    window: asyncio.Semaphore
    turns: list[asyncio.Event]

    @classmethod
    def of(cls, concurrency: int, samples: int) -> _Slots:
        return cls(
            asyncio.Semaphore(concurrency),
            asyncio.Semaphore(2 * concurrency),
            [asyncio.Event() for _ in range(samples)],
        )


@dataclass
class CaseRun:
    """Dispatch of one case's samples; items collect their results from it.

    A request that fails with a connection error, 429 or 503 is sent again
    (``max_retries``, exponential backoff with full jitter) unless the server died;
    a dead server fails the case's remaining samples at once, or is restarted
    up to ``max_restarts`` times and the samples carry on.
    """

    case: Case
    samples: Sequence[Sample]
    server: RunningServer
    backend: Backend
    #: Starts a fresh server for this case (stopping the dead one); None: no restarts.
    restart: Callable[[], RunningServer] | None = None
    futures: dict[str, concurrent.futures.Future[Completion]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    #: What preparing each sample's images sent and cost.
    prepared: dict[str, PrepStats] = field(default_factory=dict)
    #: The cache of rendered pages (the run's ``--vlmhb-cache``).
    cache_dir: Path = field(default_factory=lambda: Path(".vlmhb-cache"))
    restarts: int = 0
    #: Why starting a fresh server failed (then no more restarts are tried).
    restart_error: str | None = None
    done: concurrent.futures.Future[CaseInfo] | None = None
    retry_initial_s: float = 0.5
    retry_max_s: float = 8.0
    _restart_lock: asyncio.Lock | None = None

    def start(self, loop: LoopThread) -> None:
        self.futures = {s.id: concurrent.futures.Future() for s in self.samples}
        self.done = loop.submit(self._dispatch_all())

    def _death(self, server: RunningServer | None = None) -> ServerError | None:
        """A ServerError with exit code and log tail if the server has died."""
        server = server or self.server
        code = server.exit_code() if server.exit_code is not None else None
        if code is None:
            return None
        tail = log_tail(server.log_path) if server.log_path else "(no log)"
        return ServerError(
            f"the server exited with code {code} during case {self.case.id}; "
            f"log {server.log_path}:\n{tail}"
        )

    async def _death_within(self, server: RunningServer, seconds: float) -> ServerError | None:
        """After a failed request: give a dying server a moment to be reaped (no wait
        for a server without a process to check, such as an external endpoint)."""
        if server.exit_code is None:
            return None
        for _ in range(max(1, int(seconds / 0.05))):
            dead = self._death(server)
            if dead is not None:
                return dead
            await asyncio.sleep(0.05)
        return None

    async def _replace(self, dead_server: RunningServer) -> bool:
        """Restart the case's server after ``dead_server`` died; False if out of restarts."""
        assert self._restart_lock is not None
        async with self._restart_lock:
            if self.server is not dead_server:
                return True  # another request already restarted it
            if (
                self.restart is None
                or self.restarts >= self.case.max_restarts
                or self.restart_error is not None
            ):
                return False
            try:
                self.server = await asyncio.to_thread(self.restart)
            except VlmhbError as exc:
                self.restart_error = str(exc)  # a server that cannot start: give up
                return False
            self.restarts += 1
            return True

    async def _body(self, sample: Sample) -> dict[str, Any]:
        """The sample's request body, its images prepared off the event loop (read,
        rendered, resized, encoded; cached pages are read back); their figures are
        kept in :attr:`prepared`."""
        if sample.error:
            raise SampleError(sample.error)
        ready = await documents.prepare(self.case, sample, self.cache_dir)
        self.prepared[sample.id] = PrepStats.of(ready)
        content = documents.user_content(sample.prompt, ready)
        return chat_body(self.case, self.server.served_name, self.backend, content)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        sample: Sample,
        body: dict[str, Any],
        server: RunningServer,
    ) -> Completion:
        """One sample's request, retried on connection errors, 429 and 503."""
        # A plain loop, not a retry library: profiled on this hot path, tenacity's
        # per-attempt bookkeeping cost half as much CPU as the streaming request itself.
        for attempt in range(self.case.max_retries + 1):
            try:
                return await stream_chat(
                    session,
                    server.base_url + "/chat/completions",
                    body,
                    server.headers,
                    self.case.request_timeout,
                )
            except RetryableError as exc:
                dead = await self._death_within(server, 0.5)
                if dead is not None:
                    raise dead from None  # not worth a retry
                if attempt == self.case.max_retries:
                    if attempt:
                        raise RetryableError(f"{exc} (gave up after {attempt} retries)") from None
                    raise
            self.retries[sample.id] = attempt + 1
            await asyncio.sleep(self.backoff_s(attempt))
        raise AssertionError("unreachable")

    def backoff_s(self, attempt: int) -> float:
        """Exponential backoff with full jitter before retry ``attempt + 1``."""
        return random.uniform(0.0, min(self.retry_max_s, self.retry_initial_s * 2**attempt))

    async def _one(
        self,
        session: aiohttp.ClientSession,
        slots: _Slots,
        index: int,
        sample: Sample,
    ) -> None:
        # The window bounds the samples prepared or in flight (their images are in
        # memory); preparing runs outside the send slots, overlapped with the
        # requests, and samples take send slots in their order.
        async with slots.window:
            try:
                await self._prepare_and_send(session, slots, index, sample)
            finally:
                slots.turns[index].set()  # a sample that never sent lets the next go

    async def _prepare_and_send(
        self, session: aiohttp.ClientSession, slots: _Slots, index: int, sample: Sample
    ) -> None:
        future = self.futures[sample.id]
        try:
            body = await self._body(sample)
        except VlmhbError as exc:
            future.set_exception(exc)
            return
        except Exception as exc:  # an unexpected bug must not hang the item
            future.set_exception(ServerError(f"{type(exc).__name__}: {exc}"))
            return
        if index:
            await slots.turns[index - 1].wait()  # send in the samples' order
        while True:
            server = self.server
            try:
                async with slots.send:  # not held while a failed server is checked below
                    slots.turns[index].set()
                    dead = self._death(server)
                    if dead is not None:  # fail the rest of the case at once
                        raise dead
                    completion = await self._send(session, sample, body, server)
            except ServerError as exc:
                dead = self._death(server) or await self._death_within(server, 0.5)
                if dead is not None and await self._replace(server):
                    continue  # the same sample again, on the fresh server
                if dead is not None and self.restart_error is not None:
                    dead = ServerError(f"{dead}\nrestarting it failed: {self.restart_error}")
                future.set_exception(dead or exc)
            except VlmhbError as exc:
                future.set_exception(exc)
            except Exception as exc:  # an unexpected bug must not hang the item
                future.set_exception(ServerError(f"{type(exc).__name__}: {exc}"))
            else:
                future.set_result(completion)
            return

    def _metrics_url(self) -> str | None:
        path = self.backend.metrics_path
        return self.server.root_url + path if path and self.backend.server_metrics else None

    async def _watch(
        self, session: aiohttp.ClientSession, watch: ServerWatch, stop: asyncio.Event
    ) -> None:
        """Sample the server's gauges while the case runs."""
        while not stop.is_set():
            url = self._metrics_url()
            if url:
                watch.observe(await fetch_metrics_text(session, url))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.case.gauge_poll_s)

    async def _dispatch_all(self) -> CaseInfo:
        self._restart_lock = asyncio.Lock()
        connector = aiohttp.TCPConnector(limit=0)
        watch = ServerWatch(self.backend.server_metrics)
        metrics_url = self._metrics_url()
        self.server.take_peaks()  # start this case's peaks afresh
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                stop = asyncio.Event()
                watcher = None
                if metrics_url:
                    watch.before = await scrape_metrics(session, metrics_url)
                    if "running" in watch.names and self.case.gauge_poll_s > 0:
                        watcher = asyncio.create_task(self._watch(session, watch, stop))
                slots = _Slots.of(self.case.concurrency, len(self.samples))
                await asyncio.gather(
                    *(self._one(session, slots, i, s) for i, s in enumerate(self.samples))
                )
                stop.set()
                if watcher is not None:
                    await watcher
                if metrics_url and not self.restarts:
                    # After a restart the counters began again at zero: no deltas.
                    watch.after = await scrape_metrics(session, metrics_url)
        finally:
            for future in self.futures.values():
                if not future.done():
                    future.set_exception(ServerError("dispatcher stopped"))
        # The launchers name their peaks as CaseInfo does (*_peak_memory_bytes).
        peaks = cast(CaseInfo, self.server.take_peaks())
        return {**watch.summary(), **peaks, "server_restarts": self.restarts}

    def wait(self, sample_id: str) -> Completion:
        return self.futures[sample_id].result()

    def finish(self) -> CaseInfo:
        """Wait for the dispatcher; the case info with the server's own figures."""
        figures: CaseInfo = self.done.result() if self.done is not None else {}
        return {"server": cast(ServerInfo, self.server.provenance), **figures}


class Runtime:
    """Session state of one process (controller or xdist worker)."""

    def __init__(self, settings: Settings, plan: Plan, progress: Progress, worker_id: str) -> None:
        self.settings = settings
        self.plan = plan
        self.progress = progress
        self.pool = ServerPool(settings, progress)
        self.loop: LoopThread | None = None
        self.runs: dict[str, CaseRun] = {}
        self.pending: dict[str, set[str]] = {}
        self.records: dict[str, list[Record]] = {}
        self.case_info: dict[str, CaseInfo] = {}
        self.store = ResultStore(settings.output, worker_id)
        self.reusable: dict[str, StoredRecord] = {}
        if settings.resume:
            stored = load_store(settings.output)
            for skipped in stored.skipped:
                progress(f"results store: skipped {skipped}")
            self.reusable = {k: r for k, r in stored.records.items() if not r.get("error")}

    def _case_run(self, case: Case, sample_ids: Sequence[str]) -> CaseRun:
        run = self.runs.get(case.id)
        if run is None:
            server = self.pool.get(case)
            backend: Backend = registry.load(registry.BACKENDS, case.backend)()
            wanted = {
                sid
                for sid in sample_ids
                if record_key(case, self.plan.sample(case.id, sid)) not in self.reusable
            }
            samples = [s for s in self.plan.samples[case.id] if s.id in wanted]
            run = CaseRun(
                case,
                samples,
                server,
                backend,
                restart=lambda: self.pool.restart(case),
                cache_dir=self.settings.cache,
            )
            run.start(self.event_loop())
            self.runs[case.id] = run
            self.pending[case.id] = set(wanted)
        return run

    def run_sample(
        self, case_id: str, sample_id: str, scheduled: Callable[[], Sequence[str]]
    ) -> tuple[Record, CaseInfo | None]:
        """Answer, score and store one sample.

        Returns its record (``error`` set when it could not be answered) and,
        for the case's last sample in this process, the case info.
        ``scheduled`` lists the case's sample ids this process will run; it
        is called once, when the case starts.
        """
        case = self.plan.case(case_id)
        sample = self.plan.sample(case_id, sample_id)
        key = record_key(case, sample)
        stored = self.reusable.get(key)
        if stored is not None:
            reused = rescore(case, sample, stored)
            self.records.setdefault(case_id, []).append(reused)
            return reused, None
        completion: Completion | None = None
        error: str | None = None
        run: CaseRun | None = None
        try:
            run = self.runs.get(case_id) or self._case_run(case, scheduled())
            completion = run.wait(sample_id)
        except StreamError as exc:
            error, completion = str(exc), exc.partial  # keep what had arrived
        except (SampleError, ServerError) as exc:
            error = str(exc)
        record: StoredRecord = {
            **make_record(
                case,
                sample,
                completion,
                error,
                retries=run.retries.get(sample_id, 0) if run else 0,
                prep=run.prepared.get(sample_id) if run else None,
            ),
            "key": key,
        }
        self._store(record)
        info = None
        remaining = self.pending.get(case_id)
        if remaining is not None:
            remaining.discard(sample_id)
            if not remaining:
                info = self.runs[case_id].finish()
                self.case_info[case_id] = info
                self.store.append(case_info_entry(case_id, info))
        return record, info

    def event_loop(self) -> LoopThread:
        """The process's event loop thread (started on first use)."""
        if self.loop is None:
            self.loop = LoopThread()
        return self.loop

    def store_record(self, record: Record, key: str) -> None:
        """Keep and store a record made outside a case run (a user test's call)."""
        self._store({**record, "key": key})

    def _store(self, record: StoredRecord) -> None:
        self.records.setdefault(record["case_id"], []).append(record)
        self.store.append(record)  # flushed at once: a killed run keeps what it scored

    def close(self) -> None:
        self.store.close()
        self.pool.stop()
        if self.loop is not None:
            self.loop.close()
