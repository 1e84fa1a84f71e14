"""Model loading and token-by-token generation with transformers.

One generation runs at a time (the model is not thread-safe) in a worker
thread; a ``BaseStreamer`` receives each new id inside ``generate()``,
detokenizes it incrementally and hands it to the asyncio loop at once, so the
first token leaves the server when it is generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import torch
import transformers
from transformers import AutoConfig, AutoProcessor, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from . import DEFAULT_MODEL_CLASS
from .detokenizer import IncrementalDetokenizer, StopStringChecker
from .inputs import convert_messages
from .metrics import Metrics, process_peak_rss_bytes
from .protocol import (
    ApiError,
    ChatCompletionRequest,
    FinishEvent,
    GenerationError,
    TokenEvent,
)
from .templates import resolve_template_kwargs, template_variables

log = logging.getLogger("pytest_vlmhb.server")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: How much of each request's rendered prompt the INFO log shows.
PROMPT_LOG_CHARS = 2000


@dataclass
class Prepared:
    """A validated request, tokenized and ready to generate."""

    inputs: dict[str, Any]
    prompt_token_ids: list[int]
    prompt_tokens: int
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    ignore_eos: bool
    stop: list[str]


class _End:
    """Marks the end of a generation's event stream."""


_END = _End()

#: What the generating thread hands to the request: events, a failure, the end.
_Item = TokenEvent | FinishEvent | BaseException | _End


@dataclass
class _State:
    """Shared between the generating thread and the request."""

    detok: IncrementalDetokenizer
    stops: StopStringChecker
    max_tokens: int
    eos_ids: frozenset[int]
    emit: Callable[[_Item], None]
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False


class _QueueStreamer(BaseStreamer):
    """Receives ids inside ``generate()``; pushes one event per token to the loop."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        state = self._state
        for token_id in value.reshape(-1).tolist():
            if state.finish_reason is not None or state.cancelled:
                return  # a step past a stop string: dropped, as vLLM never makes it
            state.token_ids.append(token_id)
            text = state.stops.feed(state.detok.add(token_id))
            if state.stops.stopped or token_id in state.eos_ids:
                state.finish_reason = "stop"
            elif len(state.token_ids) >= state.max_tokens:
                state.finish_reason = "length"
            if state.finish_reason is not None:
                text += state.stops.flush()  # the last token's chunk ends it, as in vLLM
            state.emit(TokenEvent(token_id, text, state.finish_reason))

    def end(self) -> None:
        pass


class _StopWhenDone(StoppingCriteria):
    """Ends generate() after a stop string or a client disconnect."""

    def __init__(self, state: _State) -> None:
        self._state = state

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = self._state.finish_reason is not None or self._state.cancelled
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_model_class(name: str) -> Any:
    """The transformers class called ``name``; ValueError naming the version if none."""
    cls = getattr(transformers, name, None) if name.isidentifier() else None
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ValueError(
            f"--model-class {name}: transformers {transformers.__version__} has no model "
            f"class of that name (e.g. {DEFAULT_MODEL_CLASS}, AutoModelForCausalLM)"
        )
    return cls


def resolve_dtype(dtype: str, device: torch.device, config_dtype: Any) -> torch.dtype:
    """``auto``: float32 on CPU; on GPU the checkpoint's dtype, float32 -> bfloat16 (as vLLM)."""
    if dtype != "auto":
        return DTYPES[dtype]
    if device.type == "cpu":
        return torch.float32
    if isinstance(config_dtype, str):
        config_dtype = DTYPES.get(config_dtype)
    if config_dtype in (None, torch.float32):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    checkpoint_dtype: torch.dtype = config_dtype
    return checkpoint_dtype


def _max_model_len(config: Any, requested: int | None) -> int:
    """``--max-model-len``, or the model's positions; more than the model has is an error."""
    text_config = getattr(config, "text_config", None) or config
    positions = int(getattr(text_config, "max_position_embeddings", 0) or 0)
    if requested is None:
        return positions or 1 << 30
    if positions and requested > positions:
        raise ValueError(
            f"--max-model-len {requested} exceeds the model's {positions} positions "
            "(max_position_embeddings)"
        )
    return requested


class Engine:
    """A loaded model and processor; serialises generation behind a lock."""

    def __init__(
        self,
        model_dir: Path,
        *,
        served_model_name: str,
        dtype: str = "auto",
        device: str = "auto",
        max_new_tokens_limit: int = 4096,
        max_images: int = 8,
        trust_remote_code: bool = False,
        model_class: str = DEFAULT_MODEL_CLASS,
        mm_processor_kwargs: dict[str, Any] | None = None,
        chat_template: str | None = None,
        max_model_len: int | None = None,
    ) -> None:
        self.served_model_name = served_model_name
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_images = max_images
        self.mm_processor_kwargs = dict(mm_processor_kwargs or {})
        self.device = resolve_device(device)
        remote = {"trust_remote_code": trust_remote_code}
        config = AutoConfig.from_pretrained(model_dir, **remote)
        self.max_model_len = _max_model_len(config, max_model_len)
        # As in vLLM: the processor is built with the kwargs and called with them too.
        self.processor = AutoProcessor.from_pretrained(
            model_dir, **remote, **self.mm_processor_kwargs
        )
        if chat_template is not None:
            self.processor.chat_template = chat_template
        self.template_variables = template_variables(self.processor.chat_template)
        self.tokenizer = self.processor.tokenizer
        model = resolve_model_class(model_class).from_pretrained(
            model_dir, config=config, dtype="auto", **remote
        )
        self.dtype = resolve_dtype(dtype, self.device, model.config.dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        eos = self.model.generation_config.eos_token_id
        eos_list = eos if isinstance(eos, list) else [] if eos is None else [eos]
        self.eos_ids = frozenset(int(e) for e in eos_list)
        pad = self.model.generation_config.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        peak = (
            torch.cuda.max_memory_allocated
            if self.device.type == "cuda"
            else process_peak_rss_bytes
        )
        self.metrics = Metrics(peak_memory=peak)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="vlmhb-gen")

    # -- preparation ---------------------------------------------------------------
    async def prepare(self, request: ChatCompletionRequest) -> Prepared:
        """Validate, decode images and tokenize (off the event loop); ApiError on a bad request."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._prepare_blocking, request)

    def _prepare_blocking(self, request: ChatCompletionRequest) -> Prepared:
        if request.n != 1:
            raise ApiError("only n=1 is supported", param="n")
        requested = request.requested_max_tokens()
        if requested is not None and requested < 1:
            raise ApiError("max_tokens must be at least 1", param="max_tokens")
        if requested is not None and requested > self.max_new_tokens_limit:
            raise ApiError(
                f"max_tokens {requested} exceeds this server's limit {self.max_new_tokens_limit}",
                param="max_tokens",
            )
        messages, images = convert_messages(request.messages, max_images=self.max_images)
        template_kwargs = resolve_template_kwargs(
            request.chat_template_kwargs, self.template_variables
        )
        with self._lock:  # the tokenizer is shared with the generating thread
            try:
                text = self.processor.apply_chat_template(
                    messages, tokenize=False, **template_kwargs
                )
                inputs = self.processor(
                    text=text,
                    images=images or None,
                    return_tensors="pt",
                    # the server's, then the request's over them (vLLM's request field)
                    **{**self.mm_processor_kwargs, **(request.mm_processor_kwargs or {})},
                )
            except (ValueError, TypeError, KeyError, jinja2.TemplateError) as exc:
                raise ApiError(f"cannot build the prompt: {exc}", param="messages") from exc
        prompt_tokens = int(inputs["input_ids"].shape[1])
        log.info(
            "prompt (%d tokens, %d image(s)): %r",
            prompt_tokens,
            len(images),
            text[:PROMPT_LOG_CHARS],
        )
        max_new = self._max_new_tokens(requested, prompt_tokens)
        return Prepared(
            inputs=dict(inputs),
            prompt_token_ids=inputs["input_ids"][0].tolist(),
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new,
            temperature=request.temperature or 0.0,
            top_p=request.top_p if request.top_p is not None else 1.0,
            seed=request.seed,
            ignore_eos=request.ignore_eos,
            stop=request.stop_strings(),
        )

    def _max_new_tokens(self, requested: int | None, prompt_tokens: int) -> int:
        """The request's token budget, at most the room ``max_model_len`` leaves;
        ApiError when the prompt alone fills it."""
        room = self.max_model_len - prompt_tokens
        if room < 1:
            raise ApiError(
                f"This model's maximum context length is {self.max_model_len} tokens. "
                f"However, your prompt contains {prompt_tokens} input tokens, which leaves "
                "no room for any output token. Please reduce the length of the input prompt.",
                param="messages",
            )
        # As vLLM (``get_max_tokens``): a budget over the room left is cut to it.
        max_new = requested if requested is not None else self.max_new_tokens_limit
        return min(max_new, room)

    # -- generation ----------------------------------------------------------------
    async def stream(self, prepared: Prepared) -> AsyncIterator[TokenEvent | FinishEvent]:
        """Yield one TokenEvent per generated token, then a FinishEvent.

        Raises GenerationError if generation fails; closing the iterator early
        (client gone) stops generation at the next token.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()

        def emit(event: _Item) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody listens any more
                loop.call_soon_threadsafe(queue.put_nowait, event)

        state = _State(
            detok=IncrementalDetokenizer(self.tokenizer),
            stops=StopStringChecker(prepared.stop),
            max_tokens=prepared.max_new_tokens,
            eos_ids=frozenset() if prepared.ignore_eos else self.eos_ids,
            emit=emit,
        )
        self.metrics.add(requests_waiting=1)
        loop.run_in_executor(self._executor, self._generate_blocking, prepared, state)
        try:
            while True:
                event = await queue.get()
                if isinstance(event, _End):
                    return
                if isinstance(event, BaseException):
                    raise GenerationError(str(event) or type(event).__name__) from event
                yield event
        finally:
            state.cancelled = True

    def _generate_blocking(self, prepared: Prepared, state: _State) -> None:
        running = False
        try:
            with self._lock:
                self.metrics.add(requests_waiting=-1, requests_running=1)
                running = True
                if state.cancelled:
                    return
                self._run_generate(prepared, state)
            reason = state.finish_reason or (
                "stop" if state.token_ids and state.token_ids[-1] in state.eos_ids else "length"
            )
            self.metrics.add(
                prompt_tokens_total=prepared.prompt_tokens,
                generation_tokens_total=len(state.token_ids),
            )
            state.emit(
                FinishEvent(
                    finish_reason=reason,
                    text=state.stops.flush(),
                    prompt_tokens=prepared.prompt_tokens,
                    completion_tokens=len(state.token_ids),
                )
            )
        except BaseException as exc:  # reported to the request, never lost in the thread
            state.emit(exc)
        finally:
            self.metrics.add(**({"requests_running": -1} if running else {"requests_waiting": -1}))
            state.emit(_END)

    def _run_generate(self, prepared: Prepared, state: _State) -> None:
        inputs = {
            k: v.to(self.device, dtype=self.dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in prepared.inputs.items()
        }
        sampling: dict[str, Any] = {"do_sample": False}
        if prepared.temperature > 0:
            sampling = {
                "do_sample": True,
                "temperature": prepared.temperature,
                "top_p": prepared.top_p,
                "top_k": 0,
            }
            if prepared.seed is not None:
                torch.manual_seed(prepared.seed)
        eos = None if prepared.ignore_eos else sorted(self.eos_ids) or None
        with torch.inference_mode():
            self.model.generate(
                **inputs,
                **sampling,
                max_new_tokens=prepared.max_new_tokens,
                min_new_tokens=0,
                eos_token_id=eos,
                pad_token_id=self.pad_id,
                streamer=_QueueStreamer(state),
                stopping_criteria=StoppingCriteriaList([_StopWhenDone(state)]),
            )
