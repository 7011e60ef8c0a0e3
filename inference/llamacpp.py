"""The llama.cpp engine: GGUF weights run natively on a CPU, in-process (llama-cpp-python).

One llama.cpp context serves every question. Its key/value memory is *unified*: cells are
shared between sequences, so a question copies the cells of a cached prompt that starts the
same way (system prompt + schema of its database) for free and pays only for its own tokens.

- **Continuous batching.** A scheduler thread owns the context. Each step decodes one batch
  that holds the next token of every running question plus a chunk of the prompt of a
  question that has just arrived, so a new question starts while a long generation runs,
  and up to ``parallel`` questions decode together (one pass over the weights for all).
- **The prefix cache.** When a prompt has been read, its cells are kept under a cache
  sequence id. A later prompt copies the cells of the cached prompt with which it shares the
  longest prefix. A new prompt replaces the cached ones it mostly repeats (a second question
  on one database replaces the first), so each recently used database holds one slot; the
  least recently used slots go when ``cache_tokens`` cells are not enough.
- **Greedy decoding** (argmax), stopping on ``<|im_end|>`` and ``<|endoftext|>`` and on the
  model's own end-of-generation tokens; token counts come from the model's own tokenizer.
- **Sampled candidates on one prompt** (``submit_samples``): the greedy answer reads the
  prompt; each sample starts once it has, from the cached prompt (one token of its own to
  read), and draws its tokens with a temperature, top-k and top-p from its own seeded
  generator, so the same request samples the same candidates.
- **LoRA adapters as GGUF** load by name; the questions of one batch share an adapter (a
  llama.cpp context applies one set), and a cached prefix serves only its own adapter.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.engine import STOP_TOKENS, TOP_K, TOP_P, Batched, Completion, EngineError

log = logging.getLogger(__name__)

# A prompt that shares at least this share of a cached prompt's tokens replaces it: the same
# database's schema, asked again. Different databases share only the instructions' head.
_SAME_FAMILY = 0.5


@dataclass(frozen=True, kw_only=True)
class LlamaCppConfig:
    model_path: Path
    threads: int | None = None
    parallel: int = 8
    cache_tokens: int = 16_384
    cache_slots: int = 8
    batch_tokens: int = 512


@dataclass
class _Request:
    tokens: list[int]
    adapter: str | None
    max_new_tokens: int
    future: concurrent.futures.Future[Batched]
    enqueued: float = field(default_factory=time.perf_counter)
    temperature: float = 0.0  # 0: greedy
    seed: int = 0
    after: _Request | None = None  # starts once this request has read the (same) prompt
    read: bool = False  # its prompt has been read (its cells are in the cache)
    rng: Any = None

    def ready(self) -> bool:
        return self.after is None or self.after.read or self.after.future.done()


@dataclass
class _Running:
    """A question being read or answered, as one sequence of the context."""

    request: _Request
    seq: int
    pos: int  # the next position to fill
    pending: list[int]  # prompt tokens not yet read
    cached: int  # prompt tokens whose cells came from the cache
    started: float
    source: int | None = None  # the cache slot whose cells it shares
    shared: int = 0  # how many of its cells it shares with that slot
    batch_size: int = 1
    generated: list[int] = field(default_factory=list)


@dataclass
class _Prefix:
    seq: int
    tokens: tuple[int, ...]
    adapter: str | None


@dataclass(frozen=True, kw_only=True)
class CacheStats:
    hits: int
    misses: int
    reused_tokens: int
    slots: int


class LlamaCppEngine:
    """Thread-safe: ``submit`` and ``generate`` may be called from any thread."""

    device = "cpu"

    def __init__(self, config: LlamaCppConfig) -> None:
        import llama_cpp
        from llama_cpp import _internals

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's own chatter
        self._ll = llama_cpp
        self.name = config.model_path.name
        self.config = config
        threads = config.threads or os.cpu_count() or 1
        self._n_seq = min(config.parallel + config.cache_slots, llama_cpp.llama_max_parallel_sequences())
        model_params = llama_cpp.llama_model_default_params()
        self._model = _internals.LlamaModel(path_model=str(config.model_path), params=model_params, verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = config.cache_tokens
        params.n_batch = config.batch_tokens
        params.n_ubatch = config.batch_tokens
        params.n_seq_max = self._n_seq
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = True  # cells shared between sequences: a copied prefix costs nothing
        self._ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        self._n_ctx = self._ctx.n_ctx()
        self._batch = llama_cpp.llama_batch_init(config.batch_tokens, 0, 1)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._model.vocab)
        self._tokenizer_lock = threading.Lock()
        self._stop_ids = frozenset(self._special_id(t) for t in STOP_TOKENS) - {None}
        self._lora: dict[str, Any] = {}  # name -> llama_adapter_lora pointer
        self._lora_paths: dict[str, Path] = {}
        self._current_adapter: str | None = None
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._waiting: list[_Request] = []
        self._running: list[_Running] = []
        self._cache: OrderedDict[int, _Prefix] = OrderedDict()  # least recently used first
        self._free = set(range(self._n_seq))
        self._hits = self._misses = self._reused = 0
        self.batches_run = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="llamacpp", daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, config: LlamaCppConfig) -> LlamaCppEngine:
        started = time.perf_counter()
        engine = cls(config)
        log.info(
            "model loaded",
            extra={
                "fields": {
                    "model": str(config.model_path),
                    "engine": "llama.cpp",
                    "threads": config.threads or os.cpu_count(),
                    "parallel": config.parallel,
                    "cache_tokens": engine._n_ctx,
                    "load_s": round(time.perf_counter() - started, 2),
                }
            },
        )
        return engine

    # --- the engine interface ----------------------------------------------------------

    @property
    def adapters(self) -> tuple[str, ...]:
        return tuple(self._lora_paths)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str) -> list[int]:
        """The model's own tokens for a prompt: special tokens (``<|im_start|>``) are parsed
        as such, no BOS is added, as the transformers engine tokenizes."""
        with self._tokenizer_lock:
            return list(self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def load_adapter(self, name: str, path: Path) -> None:
        """Add a LoRA adapter in GGUF form (llama.cpp cannot read peft's safetensors)."""
        if name in self._lora_paths:
            raise EngineError(f"adapter '{name}' is already loaded")
        if path.is_dir() or path.suffix != ".gguf":
            raise not_a_gguf_adapter(name)
        adapter = self._ll.llama_adapter_lora_init(self._model.model, str(path).encode("utf-8"))
        if not adapter:
            raise EngineError(f"adapter '{name}': llama.cpp could not load {path.name} for this model")
        self._lora[name] = adapter
        self._lora_paths[name] = path

    def remove_adapter(self, name: str) -> None:
        if name not in self._lora_paths:
            raise EngineError(f"adapter '{name}' is not loaded")
        # The pointer stays valid until the model is freed; only new requests lose the name.
        del self._lora_paths[name]

    def submit(self, prompt: str, *, adapter: str | None, max_new_tokens: int) -> concurrent.futures.Future[Batched]:
        """Queue one prompt; the future resolves when its answer is complete."""
        tokens = self._checked(prompt, adapter, max_new_tokens)
        future: concurrent.futures.Future[Batched] = concurrent.futures.Future()
        self._queue.put(_Request(tokens, adapter, max_new_tokens, future))
        return future

    def submit_samples(
        self, prompt: str, *, adapter: str | None, max_new_tokens: int, n: int, temperature: float, seed: int = 0
    ) -> list[concurrent.futures.Future[Batched]]:
        """The greedy answer and ``n`` sampled ones for one prompt, read once: futures in
        that order. The samples wait until the greedy one has read the prompt, then copy
        its cells from the cache."""
        tokens = self._checked(prompt, adapter, max_new_tokens)
        leader = _Request(tokens, adapter, max_new_tokens, concurrent.futures.Future())
        requests = [leader] + [
            _Request(
                tokens, adapter, max_new_tokens, concurrent.futures.Future(), temperature=temperature,
                seed=seed + i, after=leader,
            )
            for i in range(1, n + 1)
        ]  # fmt: skip
        for request in requests:
            self._queue.put(request)
        return [r.future for r in requests]

    def _checked(self, prompt: str, adapter: str | None, max_new_tokens: int) -> list[int]:
        if adapter is not None and adapter not in self._lora_paths:
            raise EngineError(f"adapter '{adapter}' is not loaded")
        if self._closed:
            raise EngineError("the engine is closed")
        tokens = self.tokenize(prompt)
        if not tokens:
            raise EngineError("empty prompt")
        if len(tokens) + max_new_tokens > self._n_ctx:
            raise EngineError(
                f"the prompt ({len(tokens)} tokens) and its answer do not fit the engine's "
                f"{self._n_ctx} cells (CHAT2SQL_LLAMACPP_CACHE_TOKENS)"
            )
        return tokens

    def generate(
        self,
        prompts: list[str],
        *,
        adapters: list[str | None],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[Completion]:
        """Completions for a batch (they decode together), as the transformers engine: greedy,
        or sampled at ``temperature`` (> 0), the i-th prompt from ``seed + i``."""
        if len(prompts) != len(adapters):
            raise EngineError("one adapter entry per prompt")
        futures = []
        for i, (prompt, adapter) in enumerate(zip(prompts, adapters, strict=True)):
            tokens = self._checked(prompt, adapter, max_new_tokens)
            future: concurrent.futures.Future[Batched] = concurrent.futures.Future()
            self._queue.put(_Request(tokens, adapter, max_new_tokens, future, temperature=temperature, seed=seed + i))
            futures.append(future)
        return [f.result().completion for f in futures]

    def cache_stats(self) -> CacheStats:
        return CacheStats(hits=self._hits, misses=self._misses, reused_tokens=self._reused, slots=len(self._cache))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._ll.llama_batch_free(self._batch)
        self._ctx.close()  # type: ignore[no-untyped-call]
        self._model.close()  # type: ignore[no-untyped-call]

    # --- the scheduler thread ----------------------------------------------------------

    def _loop(self) -> None:
        while not self._closed:
            try:
                if not self._take_new(block=not self._running and not self._waiting):
                    break
                self._admit()
                if self._running:
                    self._step()
            except Exception as exc:  # a failed step fails its questions, never the thread
                log.exception("llama.cpp step failed", extra={"fields": {"running": len(self._running)}})
                for running in self._running:
                    self._release(running)
                    _fail(running.request, exc)
                self._running = []
        closed = EngineError("the engine is closed")
        for running in self._running:
            _fail(running.request, closed)
        for request in self._waiting:
            _fail(request, closed)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                _fail(item, closed)

    def _take_new(self, *, block: bool) -> bool:
        """Move queued requests to the waiting list; False once ``close`` was called."""
        try:
            item = self._queue.get() if block else self._queue.get_nowait()
            while item is not None:
                if item.future.set_running_or_notify_cancel():
                    self._waiting.append(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return True
        return False

    def _admit(self) -> None:
        """Start waiting questions while sequences and cells allow, oldest first, all on the
        running questions' adapter (a context applies one set of adapters at a time)."""
        while len(self._running) < self.config.parallel:
            request = next((r for r in self._waiting if r.ready()), None)
            if request is None:
                break
            if self._running and request.adapter != self._current_adapter:
                return
            if not self._make_room(request):
                return
            self._waiting.remove(request)
            if request.adapter != self._current_adapter:
                self._set_adapter(request.adapter)
            self._running.append(self._start(request))
        size = len(self._running)
        for running in self._running:
            running.batch_size = max(running.batch_size, size)

    def _start(self, request: _Request) -> _Running:
        seq = self._free.pop()
        prefix, shared = self._best_prefix(request.tokens, request.adapter)
        reuse = min(shared, len(request.tokens) - 1)  # the last prompt token is read again for its logits
        memory = self._ctx.memory
        self._ll.llama_memory_seq_rm(memory, seq, -1, -1)
        if prefix is not None and reuse > 0:
            self._ll.llama_memory_seq_cp(memory, prefix.seq, seq, 0, reuse)
            self._cache.move_to_end(prefix.seq)
            self._hits += 1
            self._reused += reuse
        else:
            reuse = 0
            self._misses += 1
        return _Running(
            request=request,
            seq=seq,
            pos=reuse,
            pending=request.tokens[reuse:],
            cached=reuse,
            started=time.perf_counter(),
            source=prefix.seq if prefix is not None and reuse else None,
            shared=reuse,
        )

    def _best_prefix(self, tokens: Sequence[int], adapter: str | None) -> tuple[_Prefix | None, int]:
        best, best_len = None, 0
        for prefix in self._cache.values():
            if prefix.adapter != adapter:
                continue
            shared = _common_prefix(prefix.tokens, tokens)
            if shared > best_len:
                best, best_len = prefix, shared
        return best, best_len

    def _step(self) -> None:
        """One decode: the next token of each answering question, then prompt chunks."""
        batch, ll = self._batch, self._ll
        rows: list[tuple[_Running, int]] = []  # (question, batch row with logits)
        n = 0
        for running in self._running:
            if not running.pending:
                _put(batch, n, running.generated[-1], running.pos, running.seq, logits=True)
                rows.append((running, n))
                running.pos += 1
                n += 1
        budget = self.config.batch_tokens - n
        for running in self._running:
            if not running.pending or budget <= 0:
                continue
            chunk = running.pending[:budget]
            for i, token in enumerate(chunk):
                last = i == len(chunk) - 1 and len(chunk) == len(running.pending)
                _put(batch, n, token, running.pos, running.seq, logits=last)
                if last:
                    rows.append((running, n))
                running.pos += 1
                n += 1
            running.pending = running.pending[len(chunk) :]
            budget -= len(chunk)
        batch.n_tokens = n
        code = ll.llama_decode(self._ctx.ctx, batch)
        while code == 1 and self._cache:  # no free cells: llama.cpp left the memory as it was
            self._drop(next(iter(self._cache.values())))
            code = ll.llama_decode(self._ctx.ctx, batch)
        if code != 0:
            raise EngineError(f"llama.cpp could not decode a batch (code {code})")
        self.batches_run += 1
        done: list[_Running] = []
        for running, row in rows:
            first = not running.generated
            token = self._pick(row, running.request)
            if first:
                self._remember(running)
            if token in self._stop_ids or ll.llama_vocab_is_eog(self._model.vocab, token):
                done.append(running)
                continue
            running.generated.append(token)
            if len(running.generated) >= running.request.max_new_tokens:
                done.append(running)
        for running in done:
            self._running.remove(running)
            self._finish(running)

    def _pick(self, row: int, request: _Request) -> int:
        """The next token: the most likely one, or one drawn with the request's temperature."""
        import numpy as np

        logits = np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self._ctx.ctx, row), shape=(self._n_vocab,))
        if request.temperature <= 0:
            return int(np.argmax(logits))
        if request.rng is None:
            request.rng = np.random.default_rng(request.seed)
        return int(sample_token(logits, temperature=request.temperature, rng=request.rng))

    def _remember(self, running: _Running) -> None:
        """Keep the prompt just read as a cache slot; it replaces the slots it mostly repeats."""
        running.request.read = True
        tokens = tuple(running.request.tokens)
        adapter = running.request.adapter
        for prefix in list(self._cache.values()):
            if prefix.adapter == adapter and _common_prefix(prefix.tokens, tokens) >= _SAME_FAMILY * len(prefix.tokens):
                self._drop(prefix)
        while len(self._cache) >= self.config.cache_slots or not self._free:
            if not self._cache:
                return
            self._drop(next(iter(self._cache.values())))
        seq = self._free.pop()
        self._ll.llama_memory_seq_rm(self._ctx.memory, seq, -1, -1)
        self._ll.llama_memory_seq_cp(self._ctx.memory, running.seq, seq, 0, len(tokens))
        self._cache[seq] = _Prefix(seq=seq, tokens=tokens, adapter=adapter)
        running.source, running.shared = seq, len(tokens)

    def _make_room(self, request: _Request) -> bool:
        """Whether the request's cells fit beside the running ones and the cache, dropping the
        least recently used cache slots that stand in the way. A running question's cells that
        it shares with a cached slot are counted once, with the slot."""
        if not self._free:
            if not self._cache:
                return False
            self._drop(next(iter(self._cache.values())))
        need = len(request.tokens) + request.max_new_tokens
        while self._cells_in_use() + need > self._n_ctx:
            if not self._cache:
                return not self._running  # alone it always fits (checked at submit)
            self._drop(next(iter(self._cache.values())))
        return True

    def _cells_in_use(self) -> int:
        """An upper bound of the cells held: slots that share a prefix count it twice."""
        cached = sum(len(p.tokens) for p in self._cache.values())
        own = sum(
            len(r.request.tokens)
            + r.request.max_new_tokens
            - (r.shared if r.source is not None and r.source in self._cache else 0)
            for r in self._running
        )
        return cached + own

    def _drop(self, prefix: _Prefix) -> None:
        del self._cache[prefix.seq]
        self._free_seq(prefix.seq)

    def _release(self, running: _Running) -> None:
        self._free_seq(running.seq)

    def _free_seq(self, seq: int) -> None:
        """Forget a sequence's cells (those no other sequence shares are freed) and reuse its id."""
        self._ll.llama_memory_seq_rm(self._ctx.memory, seq, -1, -1)
        self._free.add(seq)

    def _finish(self, running: _Running) -> None:
        self._release(running)
        with self._tokenizer_lock:
            text = self._model.detokenize(running.generated, special=True).decode("utf-8", errors="replace")
        request = running.request
        completion = Completion(
            text=text,
            prompt_tokens=len(request.tokens),
            completion_tokens=len(running.generated),
            cached_tokens=running.cached,
        )
        queue_ms = (running.started - request.enqueued) * 1000
        if not request.future.done():
            request.future.set_result(Batched(completion=completion, queue_ms=queue_ms, batch_size=running.batch_size))

    def _set_adapter(self, name: str | None) -> None:
        ll = self._ll
        if name is None:
            code = ll.llama_set_adapters_lora(self._ctx.ctx, None, 0, None)
        else:
            adapters = (ll.llama_adapter_lora_p_ctypes * 1)(self._lora[name])
            scales = (ctypes.c_float * 1)(1.0)
            code = ll.llama_set_adapters_lora(self._ctx.ctx, adapters, 1, scales)
        if code != 0:
            raise EngineError(f"llama.cpp could not apply adapter '{name}' (code {code})")
        self._current_adapter = name

    def _special_id(self, text: str) -> int | None:
        tokens = self.tokenize(text)
        return tokens[0] if len(tokens) == 1 else None


def sample_token(logits: Any, *, temperature: float, rng: Any) -> int:
    """A token drawn from the ``TOP_K`` most likely, within ``TOP_P`` of their probability,
    at ``temperature``.

    >>> import numpy as np
    >>> sample_token(np.array([0.0, 9.0, 1.0]), temperature=0.1, rng=np.random.default_rng(0))
    1
    """
    import numpy as np

    k = min(TOP_K, len(logits))
    top = np.argpartition(logits, -k)[-k:]
    scaled = logits[top].astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    keep = order[: int(np.searchsorted(np.cumsum(probs[order]), TOP_P)) + 1]
    kept = probs[keep] / probs[keep].sum()
    return int(top[keep[int(rng.choice(len(keep), p=kept))]])


def not_a_gguf_adapter(name: str) -> EngineError:
    return EngineError(
        f"adapter '{name}': the llama.cpp engine loads LoRA adapters as .gguf files "
        "(convert it with llama.cpp's convert_lora_to_gguf.py, or use CHAT2SQL_ENGINE=transformers)"
    )


def _put(batch: Any, i: int, token: int, pos: int, seq: int, *, logits: bool) -> None:
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq
    batch.logits[i] = logits


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """
    >>> _common_prefix([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(exc)
