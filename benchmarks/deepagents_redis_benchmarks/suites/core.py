"""Suite ``core``: the physical limits of this machine, and core's own overheads.

Physical limits (no baseline): raw redis-py GET/SET of 1 KB and 1 MB, 1,000 GETs in one
pipeline, an EVALSHA no-op. Overheads (ratios): a GET through ``create_client``'s defaults vs
redis-py's defaults; ``Codec`` encode/decode of a ~2 KB chat generation vs ``json``.
"""

from __future__ import annotations

import json
import uuid
import warnings
from typing import Any

import redis

from deepagents_redis_benchmarks._harness import BenchContext, Result

_TEXT = ("The plan has three steps: read the files, summarise them, write a report. " * 12)[:800]


def _chat_completion_dict() -> dict[str, Any]:
    """A ~2 KB chat completion as plain data (the shape an OpenAI-style API returns)."""
    return {
        "id": "chatcmpl-0123456789",
        "model": "scripted-model",
        "created": 1764115200,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": _TEXT,
                    "tool_calls": [
                        {
                            "id": f"call_{i}",
                            "type": "function",
                            "function": {
                                "name": "read_file",
                                "arguments": json.dumps({"path": f"/notes/{i}.md", "limit": 200}),
                            },
                        }
                        for i in range(6)
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 512, "completion_tokens": 420, "total_tokens": 932},
    }


def _chat_generation() -> Any:
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    return ChatGeneration(
        message=AIMessage(
            content=_TEXT,
            tool_calls=[{"name": "read_file", "args": {"path": "/notes.md"}, "id": "call_1"}],
            usage_metadata={"input_tokens": 512, "output_tokens": 420, "total_tokens": 932},
            response_metadata={"model_name": "scripted", "finish_reason": "tool_calls"},
        )
    )


def run(ctx: BenchContext) -> list[Result]:
    """Measure the physical limits and core's overheads."""
    from deepagents_redis.core import Codec, LuaScript, create_client
    from langchain_core._api.beta_decorator import LangChainBetaWarning
    from langchain_core.load import dumpd, load

    # langchain_core.load is marked beta; the warning is noise here, not a finding.
    warnings.filterwarnings("ignore", category=LangChainBetaWarning)
    results: list[Result] = []
    prefix = f"bench:core:{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(ctx.url)
    ours = create_client(url=ctx.url)
    try:
        k1, k1m = f"{prefix}:1k", f"{prefix}:1m"
        v1, v1m = b"x" * 1024, b"y" * (1024 * 1024)
        raw.set(k1, v1)
        raw.set(k1m, v1m)

        for label, key, value, n in (("1 KB", k1, v1, ctx.n(5000)), ("1 MB", k1m, v1m, ctx.n(400))):
            get, _ = ctx.compare(lambda key=key: raw.get(key), None, iterations=n)
            results.append(Result(f"redis-py GET {label}", get, notes="physical limit"))
            put, _ = ctx.compare(
                lambda key=key, value=value: raw.set(key, value), None, iterations=n
            )
            results.append(Result(f"redis-py SET {label}", put, notes="physical limit"))

        keys = [f"{prefix}:p:{i}" for i in range(1000)]
        raw.mset(dict.fromkeys(keys, v1))

        def pipelined() -> None:
            pipe = raw.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
            pipe.execute()

        pipe_t, _ = ctx.compare(pipelined, None, iterations=ctx.n(200), warmup=ctx.n(20))
        results.append(
            Result(
                "redis-py 1,000 GETs, one pipeline",
                pipe_t,
                notes=f"1 KB values; {pipe_t.median / 1000 * 1e6:.2f} µs per GET",
            )
        )

        noop = LuaScript("bench_noop", "return 0")
        noop(raw, keys=[k1], args=[])
        evalsha, _ = ctx.compare(
            lambda: noop(raw, keys=[k1], args=[]), None, iterations=ctx.n(5000)
        )
        results.append(Result("EVALSHA no-op", evalsha, notes="physical limit (via LuaScript)"))

        o, b = ctx.compare(lambda: ours.get(k1), lambda: raw.get(k1), iterations=ctx.n(5000))
        results.append(
            Result(
                "create_client() GET 1 KB",
                o,
                "redis.Redis.from_url() GET 1 KB",
                b,
                notes="our defaults (protocol, timeouts, retries, health checks) vs redis-py's",
            )
        )

        codec = Codec()
        generation = _chat_generation()
        as_dict = dumpd(generation)
        size = len(json.dumps(as_dict))
        enc = codec.encode(generation)
        js = json.dumps(as_dict).encode()
        o, b = ctx.compare(lambda: codec.encode(generation), lambda: json.dumps(dumpd(generation)))
        results.append(
            Result(
                "Codec.encode(ChatGeneration)",
                o,
                "json.dumps(dumpd(gen))",
                b,
                notes=f"{size} B as JSON, {len(enc)} B encoded",
            )
        )
        o, b = ctx.compare(
            lambda: codec.decode(enc),
            lambda: load(json.loads(js), allowed_objects="core"),
        )
        results.append(
            Result("Codec.decode -> ChatGeneration", o, "json.loads + load()", b, notes="")
        )
        completion = _chat_completion_dict()
        completion_json = json.dumps(completion).encode()
        plain = codec.encode(completion)
        o, b = ctx.compare(lambda: codec.encode(completion), lambda: json.dumps(completion))
        results.append(
            Result(
                "Codec.encode(chat completion dict)",
                o,
                "json.dumps(same dict)",
                b,
                notes=f"{len(completion_json)} B as JSON, {len(plain)} B encoded",
            )
        )
        o, b = ctx.compare(lambda: codec.decode(plain), lambda: json.loads(completion_json))
        results.append(
            Result("Codec.decode -> chat completion dict", o, "json.loads(same bytes)", b)
        )
        raw.delete(k1, k1m, *keys)
    finally:
        ours.close()
        raw.close()
    return results
