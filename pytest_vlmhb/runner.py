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
from typing import Any, TypeVar

import aiohttp

from . import registry
from .backends.base import Backend
from .cases import Plan
from .client import Completion, RetryableError, StreamError, stream_chat
from .config import Case, Settings
from .envs import Progress
from .errors import SampleError, ServerError, VlmhbError
from .images import image_data_url
from .launchers.base import Launcher, RunningServer
from .launchers.local import log_tail
from .records import Record, make_record, rescore
from .store import ResultStore, case_info_entry, load_store, record_key
from .tasks.manifest import Sample

T = TypeVar("T")


class LoopThread:
    """One asyncio event loop in a daemon thread, for all dispatchers of a process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="vlmhb-loop",
                                        daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


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
        if self._server is not None:
            self.progress(f"stopping server {self._key}")
            self._server.stop()
        self._server, self._key = None, None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name: value}, summed over label sets."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + float(sample.value)
    return out


def gauge_value(text: str, name: str) -> float | None:
    """One sample's value, summed over label sets, by a cheap line scan.

    Used while a case runs, where a full parse of vLLM's large /metrics page
    on the dispatcher's event loop would delay the streams it is timing.
    """
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


async def fetch_metrics_text(session: aiohttp.ClientSession, url: str) -> str:
    """The server's /metrics page; "" when it cannot be read."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            return await resp.text() if resp.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def scrape_metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The server's Prometheus samples, parsed by prometheus_client; {} if unreadable."""
    try:
        return parse_metrics(await fetch_metrics_text(session, url))
    except ValueError:
        return {}


@dataclass
class ServerWatch:
    """The server's own figures over one case: counters before/after, gauge peaks."""

    names: dict[str, str]
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    max_running: float | None = None

    def observe(self, metrics_text: str) -> None:
        running = gauge_value(metrics_text, self.names["running"])
        if running is not None:
            self.max_running = max(running, self.max_running or 0.0)

    def delta(self, role: str) -> float | None:
        name = self.names.get(role)
        if name is None or name not in self.after:
            return None
        return self.after[name] - self.before.get(name, 0.0)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        tokens = self.delta("generation_tokens")
        if tokens is not None:
            out["server_generation_tokens"] = tokens
        ttft_sum, ttft_count = self.delta("ttft_sum"), self.delta("ttft_count")
        if ttft_sum is not None and ttft_count:
            out["server_ttft_mean_ms"] = ttft_sum / ttft_count * 1000.0
        steps = self.delta("steps")
        if tokens is not None and steps:
            # Each step gives every running request at most one token (no
            # speculative decoding), so this mean is a floor for the largest
            # batch the server ran: unlike the sampled gauge, it misses nothing.
            out["server_mean_batch"] = tokens / steps
        if self.max_running is not None:
            out["server_max_running"] = self.max_running
        peak = self.after.get(self.names.get("peak_memory_bytes", ""))
        if peak:
            out["peak_memory_bytes"] = peak
        return out


#: Images up to this size are encoded on the event loop (well under a millisecond);
#: larger ones in a worker thread, so the streams being timed are not held up.
INLINE_IMAGE_BYTES = 256 * 1024


def _small_file(path: Path) -> bool:
    try:
        return path.stat().st_size <= INLINE_IMAGE_BYTES
    except OSError:
        return True  # the request builder reports the missing file


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
    restarts: int = 0
    done: concurrent.futures.Future[dict[str, Any]] | None = None
    retry_initial_s: float = 0.5
    retry_max_s: float = 8.0
    _restart_lock: asyncio.Lock | None = None

    def start(self, loop: LoopThread) -> None:
        self.futures = {s.id: concurrent.futures.Future() for s in self.samples}
        self.done = loop.submit(self._dispatch_all())

    def body(self, sample: Sample) -> dict[str, Any]:
        if sample.error:
            raise SampleError(sample.error)
        return {
            "model": self.server.served_name,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_data_url(sample.image)}},
                {"type": "text", "text": sample.prompt},
            ]}],
            "max_tokens": self.case.max_tokens,
            "temperature": self.case.temperature,
            **self.backend.request_extras(),
            **self.case.request_params,
        }

    def _death(self, server: RunningServer | None = None) -> ServerError | None:
        """A ServerError with exit code and log tail if the server has died."""
        server = server or self.server
        code = server.exit_code()
        if code is None:
            return None
        tail = log_tail(server.log_path) if server.log_path else "(no log)"
        return ServerError(f"the server exited with code {code} during case {self.case.id}; "
                           f"log {server.log_path}:\n{tail}")

    async def _death_within(self, server: RunningServer, seconds: float) -> ServerError | None:
        """After a failed request: give a dying server a moment to be reaped."""
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
            if self.restart is None or self.restarts >= self.case.max_restarts:
                return False
            self.restarts += 1
            try:
                self.server = await asyncio.to_thread(self.restart)
            except VlmhbError:
                self.restarts = self.case.max_restarts  # a server that cannot start: give up
                return False
            return True

    async def _send(self, session: aiohttp.ClientSession, sample: Sample,
                    server: RunningServer) -> Completion:
        """One sample's request, retried on connection errors, 429 and 503."""
        if sample.error:
            raise SampleError(sample.error)
        body = (self.body(sample) if _small_file(sample.image)
                else await asyncio.to_thread(self.body, sample))  # keep the loop responsive
        # A plain loop, not a retry library: profiled on this hot path, tenacity's
        # per-attempt bookkeeping cost half as much CPU as the streaming request itself.
        for attempt in range(self.case.max_retries + 1):
            try:
                return await stream_chat(session, server.base_url + "/chat/completions", body,
                                         server.headers, self.case.request_timeout)
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
        return random.uniform(0.0, min(self.retry_max_s, self.retry_initial_s * 2 ** attempt))

    async def _one(self, session: aiohttp.ClientSession, sem: asyncio.Semaphore,
                   sample: Sample) -> None:
        future = self.futures[sample.id]
        async with sem:
            while True:
                server = self.server
                try:
                    dead = self._death(server)
                    if dead is not None:  # fail the rest of the case at once
                        raise dead
                    completion = await self._send(session, sample, server)
                except ServerError as exc:
                    dead = self._death(server) or await self._death_within(server, 0.5)
                    if dead is not None and await self._replace(server):
                        continue  # the same sample again, on the fresh server
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

    async def _watch(self, session: aiohttp.ClientSession, watch: ServerWatch,
                     stop: asyncio.Event) -> None:
        """Sample the server's gauges while the case runs."""
        while not stop.is_set():
            url = self._metrics_url()
            if url:
                watch.observe(await fetch_metrics_text(session, url))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.case.gauge_poll_s)

    async def _dispatch_all(self) -> dict[str, Any]:
        self._restart_lock = asyncio.Lock()
        sem = asyncio.Semaphore(self.case.concurrency)
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
                await asyncio.gather(*(self._one(session, sem, s) for s in self.samples))
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
        return {**watch.summary(), **self.server.take_peaks(),
                "server_restarts": self.restarts}

    def wait(self, sample_id: str) -> Completion:
        return self.futures[sample_id].result()

    def finish(self) -> dict[str, Any]:
        """Wait for the dispatcher; the case info with the server's own figures."""
        figures = self.done.result() if self.done is not None else {}
        return {"server": self.server.provenance, **figures}


class Runtime:
    """Session state of one process (controller or xdist worker)."""

    def __init__(self, settings: Settings, plan: Plan, progress: Progress,
                 worker_id: str) -> None:
        self.settings = settings
        self.plan = plan
        self.progress = progress
        self.pool = ServerPool(settings, progress)
        self.loop: LoopThread | None = None
        self.runs: dict[str, CaseRun] = {}
        self.pending: dict[str, set[str]] = {}
        self.records: dict[str, list[Record]] = {}
        self.case_info: dict[str, dict[str, Any]] = {}
        self.store = ResultStore(settings.output, worker_id)
        self.reusable: dict[str, Record] = {}
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
            wanted = {sid for sid in sample_ids
                      if record_key(case, self.plan.sample(case.id, sid)) not in self.reusable}
            samples = [s for s in self.plan.samples[case.id] if s.id in wanted]
            run = CaseRun(case, samples, server, backend,
                          restart=lambda: self.pool.restart(case))
            if self.loop is None:
                self.loop = LoopThread()
            run.start(self.loop)
            self.runs[case.id] = run
            self.pending[case.id] = set(wanted)
        return run

    def run_sample(self, case_id: str, sample_id: str,
                   scheduled: Callable[[], Sequence[str]]
                   ) -> tuple[Record, dict[str, Any] | None]:
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
            record = rescore(case, sample, stored)
            self.records.setdefault(case_id, []).append(record)
            return record, None
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
        record = make_record(case, sample, completion, error,
                             retries=run.retries.get(sample_id, 0) if run else 0)
        record["key"] = key
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

    def _store(self, record: Record) -> None:
        self.records.setdefault(record["case_id"], []).append(record)
        self.store.append(record)  # flushed at once: a killed run keeps what it scored

    def close(self) -> None:
        self.store.close()
        self.pool.stop()
        if self.loop is not None:
            self.loop.close()


