"""``OpenAICompatibleClient``: any OpenAI-compatible server (vLLM with LoRA modules, llama.cpp,
Ollama). It builds the prompt and cleans the output itself, and shares the HTTP loop (and so
the errors) of ``inference.client.http``."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, Field

from inference.cleanup import extract_sql
from inference.client.http import DEFAULT_RETRY, TIMEOUT_S, Clock, Http, RetryPolicy, Sleep, parse_reply
from inference.prompts import DEFAULT_FORMAT, get_format, prompt_for
from inference.protocol import GenerateRequest, GenerateResponse

DEFAULT_MAX_NEW_TOKENS = 128  # the seed's decoding budget
STOP = ("<|im_end|>", "<|endoftext|>")  # Qwen's two stop tokens; the seed passed only one


class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Choice(BaseModel):
    text: str


class _Completion(BaseModel):
    """The part of an OpenAI ``/v1/completions`` answer we read; the rest is ignored."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


class OpenAICompatibleClient:
    """Any OpenAI-compatible server. The prompt is built here, byte for byte what our worker
    would build, and sent as a plain completion (no chat template on the server's side).

    ``model`` is asked for when the request names no adapter (vLLM serves each LoRA module
    under its own model name). ``latency_ms`` is measured here, retries included.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout_s: float = TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._model = model
        self._http = Http(
            base_url=base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            retry=retry,
            sleep=sleep,
            clock=clock,
            trust_error_messages=False,
        )

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        format_name = request.prompt_format or DEFAULT_FORMAT
        fmt = get_format(format_name)
        prompt = prompt_for(request, format_name)
        body = {
            "model": request.adapter or self._model,
            "prompt": prompt,
            "max_tokens": request.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            "temperature": 0,
            "stop": list(STOP),
        }
        started = time.perf_counter()
        completion = parse_reply(_Completion, await self._http.post_json("/v1/completions", body))
        latency_ms = (time.perf_counter() - started) * 1000
        text = completion.choices[0].text
        usage = completion.usage or _Usage()
        return GenerateResponse(
            sql=extract_sql(text),
            raw_output=text,
            adapter=request.adapter,
            prompt_format=fmt.id,
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
            latency_ms=latency_ms,
            queue_ms=0.0,
            cold_start=False,
        )

    async def close(self) -> None:
        await self._http.aclose()
