"""A minimal OpenAI-compatible chat-completions server over a local transformers model.

For the adapters that reach their model over HTTP (:mod:`comam_env.integrations.verifiers`): the
examples and tests start one on 127.0.0.1 in a background thread, serving e.g. the tiny random
Llama of :mod:`agents.tiny`, so nothing leaves the machine::

    with ChatServer(model_path, max_new_tokens=16) as server:
        server.base_url            # "http://127.0.0.1:<port>/v1"

Routes (stdlib :mod:`http.server`, one request generated at a time under a lock):

* ``POST /v1/chat/completions`` — body ``{"model", "messages": [{"role", "content"}], "max_tokens",
  "temperature", "top_p", "seed"}``; answers ``chat.completion`` JSON (``choices[0].message``,
  ``finish_reason`` ``"stop"`` or ``"length"``, ``usage``). The prompt is the tokenizer's chat
  template with the generation prompt; a prompt longer than the window minus ``max_tokens`` is cut
  in the middle by :func:`agents.llm.truncate_prompt` (the rule ``LLMPolicy`` applies to a prompt
  it cannot locate fields in) and counted in :attr:`ChatServer.stats`. ``temperature`` 0 is greedy
  decoding; otherwise sampling is seeded: by the request's ``seed``, else by the server's ``seed``
  plus the request's number, so the same requests in the same order give the same completions.
  ``stream: true``, ``n > 1`` and tool calls are refused with 400 and a message saying so.
* ``GET /v1/models`` — the one model id; ``GET /health`` — ``{"status": "ok"}``.

Bad requests get 4xx JSON ``{"error": {"message", "type"}}`` naming the field; the server stays up.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatServer", "RequestError"]


class RequestError(ValueError):
    """A request the server refuses (answered with ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _number(body: dict, name: str, default, kind, low=None):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise RequestError(f"'{name}' must be a{'n integer' if kind is int else ' number'}, got {value!r}")
    if low is not None and value < low:
        raise RequestError(f"'{name}' must be >= {low}, got {value!r}")
    return kind(value)


def _messages(body: dict) -> list[dict[str, str]]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise RequestError(f"messages[{i}]: expected an object with role system, user or assistant")
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise RequestError(f"messages[{i}].content: only text parts are supported")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise RequestError(f"messages[{i}].content must be a string")
        if m.get("tool_calls"):
            raise RequestError(f"messages[{i}]: tool calls are not supported")
        out.append({"role": m["role"], "content": content})
    return out


class ChatServer:
    """The server (see the module docstring). ``start()`` loads the model and binds
    ``host:port`` (0 = any free port); ``stop()`` shuts it down; also a context manager."""

    def __init__(self, model_path: str, *, host: str = "127.0.0.1", port: int = 0, max_new_tokens: int = 64,
                 seed: int = 0, device: str = "cpu", model_id: str | None = None) -> None:
        self.model_path = str(model_path)
        self.host, self.port = host, int(port)
        self.max_new_tokens = int(max_new_tokens)
        self.seed = int(seed)
        self.device = device
        self.model_id = model_id or self.model_path
        self.stats = {"requests": 0, "truncated": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``http://host:port/v1``)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ChatServer:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from agents.generation import TransformersBackend

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, torch_dtype=torch.float32).to(self.device)
        self.backend = TransformersBackend(self.model)
        from agents.llm import context_window

        self.context = context_window(self.model.config, self.tokenizer)
        server = ThreadingHTTPServer((self.host, self.port), self._handler())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ generation
    def complete(self, body: Any) -> dict[str, Any]:
        """One chat completion for a request ``body`` (what ``POST /v1/chat/completions`` answers)."""
        from agents.llm import truncate_prompt

        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        if body.get("stream"):
            raise RequestError("'stream': true is not supported; send a non-streaming request")
        if _number(body, "n", 1, int, 1) != 1:
            raise RequestError("'n' must be 1")
        if body.get("tools"):
            raise RequestError("tools are not supported")
        messages = _messages(body)
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        max_new = _number({"max_tokens": limit}, "max_tokens", self.max_new_tokens, int, 1)
        temperature = _number(body, "temperature", 1.0, float, 0.0)
        top_p = _number(body, "top_p", 1.0, float, 0.0)
        if not 0.0 < top_p <= 1.0:
            raise RequestError(f"'top_p' must be in (0, 1], got {top_p}")
        seed = _number(body, "seed", None, int, 0)
        tok = self.tokenizer
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids, info = truncate_prompt(tok, text, None, self.context - max_new, context=self.context,
                                    max_new_tokens=max_new)
        stop_ids = [t for t in {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
                    if isinstance(t, int) and t >= 0 and t != tok.unk_token_id]
        with self._lock:
            number = self.stats["requests"]
            self.stats["requests"] += 1
            generator = self._torch.Generator(device="cpu").manual_seed(seed if seed is not None else self.seed + number)
            result = self.backend.generate([ids], max_new, temperature=temperature or 1.0, top_p=top_p,
                                           generator=generator, greedy=temperature == 0.0, stop_token_ids=stop_ids,
                                           pad_token_id=tok.pad_token_id or 0)
            completion = result.completion_ids[0]
            self.stats["truncated"] += int(info["truncated"])
            self.stats["prompt_tokens"] += len(ids)
            self.stats["completion_tokens"] += len(completion)
        content = tok.decode(completion, skip_special_tokens=True)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": str(body.get("model") or self.model_id),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop" if result.finished[0] else "length", "logprobs": None}],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": len(completion),
                      "total_tokens": len(ids) + len(completion)},
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # quiet: the examples print their own summary
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

            def do_GET(self):
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model_id, "object": "model"}]})
                elif self.path.rstrip("/") == "/health":
                    self._send(200, {"status": "ok"})
                else:
                    self._error(404, f"no route GET {self.path}")

            def do_POST(self):
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._error(404, f"no route POST {self.path}; this server answers /v1/chat/completions")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    try:
                        body = json.loads(self.rfile.read(length) or b"null")
                    except ValueError as exc:
                        raise RequestError(f"the request body is not JSON: {exc}") from None
                    self._send(200, server.complete(body))
                except RequestError as exc:
                    self._error(exc.status, str(exc))

        return Handler
