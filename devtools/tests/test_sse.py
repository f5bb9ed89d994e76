"""The one SSE parser of the tests and the benchmarks, without a server: lines, and a stream cut
anywhere (how the benchmarks read it)."""

import pytest

from devtools.sse import SSEDecoder, SSEEvent

APP_STREAM = (
    ": stream open\n\n"
    'id: 5\nevent: delta\ndata: {"text":"Hello"}\n\n'
    "retry: 2000\n\n"
    'id: 11\nevent: delta\ndata: {"text":" world"}\n\n'
    'event: done\ndata: {"status":"completed"}\n\n'
)


def simple(items) -> list:
    return [i if isinstance(i, str) else (i.event, i.id, i.data) for i in items]


EXPECTED = [
    "stream open",
    ("delta", "5", {"text": "Hello"}),
    ("delta", "11", {"text": " world"}),
    ("done", None, {"status": "completed"}),
]


def test_lines_give_events_comments_and_skip_data_less_blocks():
    decoder = SSEDecoder()
    items = [decoder.feed(line) for line in APP_STREAM.split("\n")]
    assert simple(i for i in items if i is not None) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(APP_STREAM)])
def test_a_stream_cut_anywhere_gives_the_same_events(size):
    decoder = SSEDecoder()
    items = []
    for start in range(0, len(APP_STREAM), size):
        items += decoder.feed_text(APP_STREAM[start : start + size])
    assert simple(items) == EXPECTED


def test_crlf_line_ends_are_accepted():
    decoder = SSEDecoder()
    items = decoder.feed_text(APP_STREAM.replace("\n", "\r\n"))
    assert simple(items) == EXPECTED


def test_an_unfinished_event_waits_for_its_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed_text('event: delta\ndata: {"text":"a"}\n') == []
    (event,) = decoder.feed_text("\n")
    assert isinstance(event, SSEEvent) and event.data == {"text": "a"}


def test_openai_chunks_keep_their_text_with_json_data_off():
    decoder = SSEDecoder(json_data=False)
    items = decoder.feed_text('data: {"choices":[]}\n\ndata: [DONE]\n\n')
    assert [(i.event, i.data) for i in items] == [
        ("message", '{"choices":[]}'),
        ("message", "[DONE]"),
    ]


def test_data_that_is_not_json_raises_when_json_is_expected():
    with pytest.raises(ValueError):
        SSEDecoder().feed_text("data: [DONE]\n\n")
