"""The LLM simulator: pure helpers, and the real server process driven by the openai SDK."""

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time

import httpx2
import openai
import pytest
from django.core.management import CommandError, call_command

from devtools.processes import REPO, free_port
from devtools.simulator import (
    Fault,
    build_app,
    estimate_prompt_tokens,
    extract_marker,
    generate_reply,
    generate_title,
    parse_fault,
    plan_reply,
    split_tokens,
)
from devtools.simulator_process import run_simulator

KEY = "sk-test-simulator"
MODEL = "gpt-4o-mini"


def client(simulator, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("api_key", KEY)
    return openai.OpenAI(base_url=simulator.base_url, **kwargs)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def stream_chunks(simulator, text: str, **kwargs) -> list:
    with client(simulator) as sdk:
        return list(
            sdk.chat.completions.create(model=MODEL, messages=user(text), stream=True, **kwargs)
        )


def content_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def collect_until_error(stream, into: list[str]) -> None:
    for chunk in stream:
        if chunk.choices:
            into.append(chunk.choices[0].delta.content or "")


# --- Pure helpers (no server) ---------------------------------------------------------------


def test_parse_fault_reads_values_and_flags():
    assert parse_fault("") == Fault()
    assert parse_fault("status=429, retry_after=1.5") == Fault(status=429, retry_after="1.5")
    assert parse_fault("status=503,fail_first=2") == Fault(status=503, fail_first=2)
    assert parse_fault("disconnect,reset,after=0") == Fault(disconnect=True, reset=True, after=0)
    assert parse_fault("stall") == Fault(stall=True, after=3)
    assert parse_fault("malformed,no_usage,no_finish") == Fault(
        malformed=True, no_usage=True, no_finish=True
    )
    assert parse_fault("ttft=0,tps=12.5,tokens=7") == Fault(ttft_ms=0, tps=12.5, tokens=7)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("status=200", "status"),
        ("status=abc", "integer"),
        ("explode", "unknown fault flag"),
        ("speed=3", "unknown fault key"),
        ("stall=1", "takes no value"),
        ("retry_after=1", "need status"),
        ("status=429,retry_after=-1", "retry_after"),
        ("fail_first=1", "need status"),
        ("stall,disconnect", "cannot be combined"),
        ("reset", "needs disconnect"),
        ("after=2", "after needs"),
        ("no_usage,after=2", "after needs"),
        ("tokens=0", "tokens"),
        ("tps=0", "tps"),
        ("status=429,status=500", "twice"),
    ],
)
def test_parse_fault_names_the_problem(spec, problem):
    with pytest.raises(ValueError, match=problem):
        parse_fault(spec)


def test_extract_marker_removes_every_marker():
    assert extract_marker("plain text") == ("plain text", None)
    assert extract_marker("Explain DNS [sim:status=429] please") == (
        "Explain DNS please",
        "status=429",
    )
    assert extract_marker("[sim:stall] a [sim:after=1]") == ("a", "stall,after=1")


def test_split_tokens_keeps_trailing_whitespace_and_joins_back():
    text = "Hello,  world!\n\n- item one\n```py\n  x = 1\n```"
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert tokens[:3] == ["Hello,  ", "world!\n\n", "- "]
    assert split_tokens("  lead") == ["  lead"]
    assert split_tokens("") == []
    assert split_tokens(" \n ") == []


def test_generate_reply_is_deterministic_markdown_of_the_requested_length():
    question = "How should I cache expensive database queries in Django?"
    reply = generate_reply(question, MODEL, 60)
    assert reply == generate_reply(question, MODEL, 60)
    assert reply != generate_reply(question, "gpt-4o", 60)
    assert reply.startswith('You asked about "How should I cache expensive database')
    assert "\n- **" in reply
    for length in (1, 5, 60, 61, 200, 777):
        assert len(split_tokens(generate_reply(question, MODEL, length))) == length


def test_generate_reply_sometimes_has_a_closed_code_block():
    replies = [generate_reply(f"question number {i}", MODEL, 80) for i in range(40)]
    with_code = [r for r in replies if "```" in r]
    assert 0 < len(with_code) < len(replies)
    assert all(r.count("```") == 2 for r in with_code)


def test_marker_never_reaches_the_reply():
    messages = user("Tell me about queues [sim:tokens=80,no_usage]")
    assert "sim:" not in plan_reply(messages, MODEL, 80)
    assert plan_reply(messages, MODEL, 80) == plan_reply(user("Tell me about queues"), MODEL, 80)


@pytest.mark.parametrize(
    "question",
    ["How do I deploy Django behind nginx with TLS?", "hi", "", '**bold** `code` "quotes"'],
)
def test_generate_title_is_two_to_six_plain_words(question):
    title = generate_title(question, MODEL)
    assert 2 <= len(title.split()) <= 6
    assert not re.search(r"[\"'`*#\[\]_]", title.replace("'s", ""))
    assert title == generate_title(question, MODEL)


def test_title_requests_get_a_title():
    messages = [
        {"role": "system", "content": "Write a short title for this conversation."},
        {"role": "user", "content": "How do I deploy Django behind nginx with TLS?"},
    ]
    title = plan_reply(messages, MODEL, 60)
    assert title == generate_title(messages[1]["content"], MODEL)
    # Question words are skipped: the title starts with what the question is about.
    assert title.startswith("Deploy Django Behind")


def test_a_transcript_is_titled_from_its_user_lines():
    transcript = (
        "User: How do I deploy Django behind nginx with TLS?\n\n"
        "Assistant: Put nginx in front and terminate TLS there.\n\nUser: And the static files?"
    )
    title = generate_title(transcript, MODEL)
    assert title == generate_title(
        "How do I deploy Django behind nginx with TLS? And the static files?", MODEL
    )
    assert "User" not in title and "Assistant" not in title


def test_estimate_prompt_tokens():
    messages = [
        {"role": "system", "content": "abcde"},  # ceil(5/4) + 4 = 6
        {"role": "user", "content": [{"type": "text", "text": "abcd"}]},  # 1 + 4 = 5
        {"role": "assistant", "content": None},  # 0 + 4
    ]
    assert estimate_prompt_tokens(messages) == 15


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"ttft_ms": -1}, "ttft_ms"),
        ({"tokens_per_second": 0}, "tokens_per_second"),
        ({"reply_tokens": 0}, "reply_tokens"),
        ({"fault": "bogus"}, "bogus"),
    ],
)
def test_build_app_rejects_bad_settings(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        build_app(**kwargs)


def test_simulator_package_does_not_import_django():
    probe = (
        "import sys, devtools.simulator.cli, devtools.simulator.server; "
        "print(sorted(m for m in sys.modules if 'django' in m))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- The command line: manage.py llm_simulator, python -m devtools.simulator ---------------

COMMANDS = {
    "manage.py": ["manage.py", "llm_simulator"],
    "module": ["-m", "devtools.simulator"],
}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--tps", "0"], "--tps"),
        (["--ttft-ms", "-5"], "--ttft-ms"),
        (["--reply-tokens", "0"], "--reply-tokens"),
        (["--fault", "status=42"], "--fault: status"),
        (["--port", "70000"], "--port"),
        (["--host", " "], "--host"),
    ],
)
def test_command_rejects_bad_options(args, problem):
    with pytest.raises(CommandError, match=problem):
        call_command("llm_simulator", *args)


def test_module_rejects_bad_options_before_serving():
    result = subprocess.run(
        [sys.executable, "-m", "devtools.simulator", "--fault", "status=42"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--fault: status must be between 400 and 599" in result.stderr


def _start_command(*args: str, command: str = "manage.py") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *COMMANDS[command], *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_command_announces_its_url_and_stops_cleanly(stop_signal, command):
    process = _start_command("--port", "0", command=command)
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"LLM simulator listening on http://127\.0\.0\.1:(\d+)/v1\n", line)
        assert match, line
        port = int(match.group(1))
        models = httpx2.get(
            f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert models.status_code == 200
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in process.stdout.read()
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("command", COMMANDS)
def test_command_fails_when_the_port_is_taken(command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = _start_command("--port", str(taken.getsockname()[1]), command=command)
        output, _ = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "could not listen" in output


# --- Over HTTP: the normal protocol ---------------------------------------------------------


def test_models(simulator):
    with client(simulator) as sdk:
        ids = [model.id for model in sdk.models.list()]
        assert {"gpt-4o-mini", "gpt-4o", "gpt-4.1", "deepseek-chat"} <= set(ids)
        assert sdk.models.retrieve("gpt-4.1").id == "gpt-4.1"
        with pytest.raises(openai.NotFoundError):
            sdk.models.retrieve("no-such-model")


def test_streaming_and_non_streaming_give_the_same_deterministic_text(simulator):
    question = "What is the difference between threads and processes?"
    chunks = stream_chunks(simulator, question)
    with client(simulator) as sdk:
        completion = sdk.chat.completions.create(model=MODEL, messages=user(question))
    expected = plan_reply(user(question), MODEL, 60)
    assert content_of(chunks) == completion.choices[0].message.content == expected
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 60
    assert completion.usage.prompt_tokens == estimate_prompt_tokens(user(question))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 60


def test_stream_chunks_follow_the_openai_shape(simulator):
    chunks = stream_chunks(simulator, "Shape check")
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    content_chunks, final = chunks[:-1], chunks[-1]
    assert len(content_chunks) == 60  # one token per chunk
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in content_chunks[1:])
    assert all(c.choices[0].finish_reason is None for c in content_chunks)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].delta.content is None
    assert all(c.usage is None for c in chunks)  # usage was not asked for


def test_raw_stream_is_server_sent_events(simulator):
    body = {"model": "my-own-model", "messages": user("raw"), "stream": True}
    with httpx2.stream(
        "POST",
        f"{simulator.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    for event in events[:-2]:
        chunk = json.loads(event.removeprefix("data: "))
        assert chunk["model"] == "my-own-model"
        assert set(chunk) >= {"id", "object", "created", "model", "choices"}


def test_usage_comes_in_a_last_chunk_only_when_asked(simulator):
    question = "Count my tokens"
    chunks = stream_chunks(simulator, question, stream_options={"include_usage": True})
    *content_chunks, finish, usage = chunks
    assert finish.choices[0].finish_reason == "stop"
    assert usage.choices == []
    assert usage.usage.completion_tokens == len(content_chunks) == 60
    assert usage.usage.prompt_tokens == estimate_prompt_tokens(user(question))
    assert all(c.usage is None for c in [*content_chunks, finish])


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_output_limit_truncates_with_finish_reason_length(simulator, limit):
    question = "A long answer please"
    chunks = stream_chunks(
        simulator, question, stream_options={"include_usage": True}, **{limit: 5}
    )
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 5
    full = split_tokens(plan_reply(user(question), MODEL, 60))
    assert content_of(chunks) == "".join(full[:5])
    with client(simulator) as sdk:
        completion = sdk.chat.completions.create(model=MODEL, messages=user(question), **{limit: 5})
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5


def test_title_generation_call(simulator):
    messages = [
        {"role": "system", "content": "Reply with a short title for the conversation."},
        {"role": "user", "content": "Why does my Celery worker leak memory?"},
    ]
    with client(simulator) as sdk:
        completion = sdk.chat.completions.create(model=MODEL, messages=messages)
    title = completion.choices[0].message.content
    assert title == generate_title(messages[1]["content"], MODEL)
    assert title.startswith("Celery Worker Leak")
    assert completion.usage.completion_tokens == len(title.split())


def test_requests_are_recorded(simulator):
    simulator.clear()
    with client(simulator) as sdk:
        sdk.chat.completions.create(
            model="gpt-4.1", messages=user("record me"), temperature=0.2, max_tokens=3
        )
    list(
        client(simulator).chat.completions.create(
            model=MODEL,
            messages=user("and me"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    first, second = simulator.requests()
    assert first["model"] == "gpt-4.1"
    assert first["messages"] == user("record me")
    assert (first["stream"], first["max_tokens"], first["temperature"]) == (False, 3, 0.2)
    assert second["stream"] is True
    assert second["stream_options"] == {"include_usage": True}
    assert time.time() - 60 < second["time"] <= time.time()
    simulator.clear()
    assert simulator.requests() == []


def test_bad_requests_get_openai_style_errors(simulator):
    url = f"{simulator.base_url}/chat/completions"
    auth = {"Authorization": f"Bearer {KEY}"}
    bad_json = httpx2.post(url, content=b"{not json", headers=auth)
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    for body in (b"[" * 100_000, b"9" * 5000):  # RecursionError; past the int digit limit
        assert httpx2.post(url, content=body, headers=auth).status_code == 400
    no_messages = httpx2.post(url, json={"model": MODEL}, headers=auth)
    assert no_messages.status_code == 400
    assert "messages" in no_messages.json()["error"]["message"]
    bad_marker = httpx2.post(
        url, json={"model": MODEL, "messages": user("[sim:explode]")}, headers=auth
    )
    assert bad_marker.status_code == 400
    assert "explode" in bad_marker.json()["error"]["message"]
    unknown = httpx2.get(f"{simulator.root_url}/v1/nope", headers=auth)
    assert unknown.status_code == 404
    assert "error" in unknown.json()
    no_key = httpx2.post(url, json={"model": MODEL, "messages": user("x")})
    assert no_key.status_code == 401


def test_a_configured_api_key_is_enforced_and_never_echoed():
    with run_simulator("--api-key", "sk-the-right-key", "--ttft-ms", "0") as strict:
        with pytest.raises(openai.AuthenticationError) as caught:
            client(strict, api_key="sk-wrong-key-12345").chat.completions.create(
                model=MODEL, messages=user("let me in")
            )
        error = caught.value
        assert error.status_code == 401
        assert error.body["code"] == "invalid_api_key"
        assert error.body["type"] == "invalid_request_error"
        assert "sk-wrong-key-12345" not in error.response.text
        assert "12345" not in error.response.text
        ok = client(strict, api_key="sk-the-right-key").chat.completions.create(
            model=MODEL, messages=user("let me in")
        )
        assert ok.choices[0].finish_reason == "stop"
        assert "sk-wrong-key-12345" not in strict.output()
        assert "sk-the-right-key" not in strict.output()


# --- Over HTTP: faults ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
def test_status_fault(simulator, status):
    with pytest.raises(openai.APIStatusError) as caught:
        stream_chunks(simulator, f"fail please [sim:status={status},retry_after=2]")
    error = caught.value
    assert error.status_code == status
    assert error.response.headers["retry-after"] == "2"
    assert error.body["message"].endswith("(simulated)")


def test_status_fault_without_retry_after_has_no_header(simulator):
    with pytest.raises(openai.InternalServerError) as caught, client(simulator) as sdk:
        sdk.chat.completions.create(model=MODEL, messages=user("[sim:status=500] boom"))
    assert "retry-after" not in caught.value.response.headers


def test_fail_first_fails_only_the_first_attempts(simulator):
    simulator.clear()
    message = f"retry me {time.time_ns()} [sim:status=503,fail_first=2,retry_after=0.01]"
    with client(simulator) as sdk:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                sdk.chat.completions.create(model=MODEL, messages=user(message))
        assert sdk.chat.completions.create(model=MODEL, messages=user(message)).choices
    assert len(simulator.requests()) == 3


def test_fail_first_lets_sdk_retries_succeed(simulator):
    message = f"retry me too {time.time_ns()} [sim:status=429,fail_first=2,retry_after=0.01]"
    with client(simulator, max_retries=3) as sdk:
        completion = sdk.chat.completions.create(model=MODEL, messages=user(message))
    assert completion.choices[0].finish_reason == "stop"


def test_stall_is_caught_by_a_read_timeout(simulator):
    received: list[str] = []
    message = "stall now [sim:stall,after=4]"
    with client(simulator, timeout=httpx2.Timeout(5, read=0.5)) as sdk:
        stream = sdk.chat.completions.create(model=MODEL, messages=user(message), stream=True)
        with pytest.raises(openai.APITimeoutError):
            collect_until_error(stream, received)
    assert received == split_tokens(plan_reply(user(message), MODEL, 60))[:4]


@pytest.mark.parametrize("spec", ["disconnect", "disconnect,reset", "disconnect,after=0"])
def test_disconnect_is_a_connection_error_not_a_clean_end(simulator, spec):
    received: list[str] = []
    with client(simulator) as sdk:
        stream = sdk.chat.completions.create(
            model=MODEL, messages=user(f"drop me [sim:{spec}]"), stream=True
        )
        with pytest.raises(openai.APIConnectionError) as caught:
            collect_until_error(stream, received)
    # A timeout would mean the connection hung open instead of dropping.
    assert not isinstance(caught.value, openai.APITimeoutError)
    if spec == "disconnect":
        assert len(received) == 3  # a bare close delivers everything sent before it
    assert len(received) <= 3


def test_disconnect_without_streaming(simulator):
    with pytest.raises(openai.APIConnectionError) as caught, client(simulator) as sdk:
        sdk.chat.completions.create(model=MODEL, messages=user("[sim:disconnect] drop"))
    assert not isinstance(caught.value, openai.APITimeoutError)


def test_disconnect_is_an_incomplete_chunked_body_for_plain_httpx(simulator):
    body = {"model": MODEL, "messages": user("[sim:disconnect,after=2] raw"), "stream": True}
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        httpx2.stream(
            "POST",
            f"{simulator.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as response,
    ):
        response.read()


def test_no_finish_sends_neither_finish_reason_nor_usage(simulator):
    message = "never finish [sim:no_finish]"
    chunks = stream_chunks(simulator, message, stream_options={"include_usage": True})
    assert content_of(chunks) == plan_reply(user(message), MODEL, 60)
    assert all(c.choices and c.choices[0].finish_reason is None for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_malformed_chunk_makes_the_sdk_raise(simulator):
    received: list[str] = []
    with client(simulator) as sdk:
        stream = sdk.chat.completions.create(
            model=MODEL, messages=user("garble [sim:malformed,after=2]"), stream=True
        )
        with pytest.raises(json.JSONDecodeError):
            collect_until_error(stream, received)
    assert len(received) == 2


def test_no_usage_ignores_include_usage(simulator):
    chunks = stream_chunks(
        simulator, "skip usage [sim:no_usage]", stream_options={"include_usage": True}
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_per_request_overrides(simulator):
    chunks = stream_chunks(
        simulator,
        "short one [sim:tokens=7,ttft=0,tps=1000]",
        stream_options={"include_usage": True},
    )
    assert chunks[-1].usage.completion_tokens == 7
    assert len(split_tokens(content_of(chunks))) == 7


def test_nul_puts_a_nul_character_inside_a_token(simulator):
    chunks = stream_chunks(simulator, "Nul here [sim:nul,after=2,tokens=6,ttft=0]")
    text = content_of(chunks)
    assert text.count("\x00") == 1
    tokens = split_tokens(text)
    assert len(tokens) == 6 and "\x00" in tokens[2] and not tokens[2].startswith("\x00")


def test_title_flag_applies_the_fault_to_title_requests_only(simulator):
    text = "Name this chat [sim:title,status=503]"
    with client(simulator) as sdk:
        reply = sdk.chat.completions.create(model=MODEL, messages=user(text))
        assert reply.choices[0].finish_reason == "stop"
        with pytest.raises(openai.InternalServerError):
            sdk.chat.completions.create(
                model=MODEL,
                messages=[{"role": "system", "content": "Write a short title."}, *user(text)],
            )


def test_server_wide_fault_and_marker_override():
    with run_simulator("--fault", "status=503", "--ttft-ms", "0") as broken:
        with pytest.raises(openai.InternalServerError), client(broken) as sdk:
            sdk.chat.completions.create(model=MODEL, messages=user("anything"))
        with client(broken) as sdk:
            ok = sdk.chat.completions.create(model=MODEL, messages=user("[sim:] healthy"))
        assert ok.choices[0].finish_reason == "stop"


# --- Over HTTP: load ------------------------------------------------------------------------


def test_serves_a_hundred_concurrent_streams(simulator):
    async def one(sdk: openai.AsyncOpenAI, index: int) -> tuple[str, str | None, int]:
        stream = await sdk.chat.completions.create(
            model=MODEL,
            messages=user(f"concurrent question {index}"),
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, usage = [], None, 0
        async for chunk in stream:
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage.completion_tokens
        return "".join(text), finish, usage

    async def all_streams() -> list[tuple[str, str | None, int]]:
        async with openai.AsyncOpenAI(
            base_url=simulator.base_url, api_key=KEY, max_retries=0, timeout=60
        ) as sdk:
            return await asyncio.gather(*(one(sdk, i) for i in range(100)))

    results = asyncio.run(all_streams())
    for index, (text, finish, usage) in enumerate(results):
        assert text == plan_reply(user(f"concurrent question {index}"), MODEL, 60)
        assert (finish, usage) == ("stop", 60)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Show me a table of prices", ["| Model |", "| :--- | ---: |"]),
        ("Some python code", ["```python\n"]),
        ("code please", ["```python\n"]),
        ("js and golang", ["```javascript\n", "```go\n"]),
        ("A numbered list", ["1. Pick", "   - watch"]),
        ("headings", ["## Background", "### Steps"]),
        ("math", ["$$\n", "\\sum_"]),
    ],
)
def test_a_message_naming_a_block_gets_it(question, expected):
    reply = plan_reply(user(question), MODEL, 60)
    for fragment in expected:
        assert fragment in reply
    assert reply.startswith(f'You asked about "{question}')
    assert reply.count("```") % 2 == 0  # every code block closed


def test_showcase_replies_are_as_long_as_their_blocks_and_long_is_longer():
    plain = plan_reply(user("How do queues work?"), MODEL, 60)
    table = plan_reply(user("a table"), MODEL, 60)
    long = plan_reply(user("a long answer"), MODEL, 60)
    assert len(split_tokens(plain)) == 60
    assert len(split_tokens(table)) >= 60
    assert len(split_tokens(long)) == 60 * 6
    # A [sim:tokens=N] marker fixes the length, and the reply is the ordinary one.
    exact = plan_reply(user("a long table"), MODEL, 70, exact=True)
    assert len(split_tokens(exact)) == 70 and "|" not in exact
    assert exact == generate_reply("a long table", MODEL, 70, showcase=False)
    # Only whole words count.
    assert plan_reply(user("a_very_long_name listens"), MODEL, 60) == generate_reply(
        "a_very_long_name listens", MODEL, 60, showcase=False
    )


def test_a_showcase_block_that_does_not_fit_the_exact_budget_is_left_out():
    reply = generate_reply("a table and python code", MODEL, 40)
    assert len(split_tokens(reply)) == 40
    assert "```" not in reply or reply.count("```") == 2
