"""The server's own figures: its Prometheus /metrics page, read around and during a case."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from .records import CaseInfo


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
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
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

    def summary(self) -> CaseInfo:
        """The case-info figures the server's counters and gauges gave (only those known)."""
        out: CaseInfo = {}
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
