"""Through the real app: the variant's model and prompt reach the upstream, and are recorded;
feedback on replies."""

import pytest

from analytics.models import AICall
from chat.models import Message
from chat.tests.test_streaming import start_reply
from devtools.live import api_client
from devtools.sse import read_stream
from experiments.bucketing import assign
from experiments.models import Feedback

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_variants_model_and_prompt_reach_the_upstream(
    app_server, simulator, user, running_canary
):
    experiment, v1, v2 = running_canary
    expected = assign(experiment.salt, user.pk, 100.0, [("control", 50.0), ("experiment", 50.0)])
    version = v1 if expected == "control" else v2
    simulator.clear()
    with api_client(app_server, user) as client:
        started = start_reply(client, "Which prompt am I on? [sim:tokens=8]")
        result = read_stream(client, started["stream_url"])
    assert result.final.data["model"] == version.model
    chat_requests = [r for r in simulator.requests() if r.get("stream")]
    assert chat_requests, simulator.requests()
    sent = chat_requests[-1]
    assert sent["model"] == version.model
    assert sent["messages"][0] == {
        "role": "system",
        "content": version.system_prompt.replace("{user_name}", user.username),
    }
    assert sent["max_tokens"] == version.max_tokens
    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert reply.variant == f"canary/{expected}" and reply.prompt_version_id == version.pk
    call = AICall.objects.get(message=reply)
    assert call.variant == f"canary/{expected}" and call.prompt_version_id == version.pk
    assert experiment.exposures.get().user_id == user.pk


def test_feedback_is_changeable_and_only_the_owner_rates(app_server, user, other_user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Rate me [sim:tokens=6]")
        read_stream(client, started["stream_url"])
        url = f"/api/messages/{started['assistant_message']['id']}/feedback"
        up = client.post(url, json={"rating": "up"})
        assert up.status_code == 200 and up.json()["feedback"]["rating"] == "up"
        down = client.post(url, json={"rating": "down", "comment": "  Too long.  "})
        assert down.json()["feedback"] == down.json()["feedback"] | {
            "rating": "down",
            "comment": "Too long.",
        }
        bad = client.post(url, json={"rating": "meh"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_rating"
        user_message = client.post(
            f"/api/messages/{started['user_message']['id']}/feedback", json={"rating": "up"}
        )
        assert user_message.status_code == 400
        shown = client.get(f"/api/messages/{started['assistant_message']['id']}").json()
        assert shown["feedback"]["rating"] == "down"
    with api_client(app_server, other_user) as intruder:
        assert intruder.post(url, json={"rating": "up"}).status_code == 404
        assert intruder.delete(url).status_code == 404
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment, feedback.user_id) == (-1, "Too long.", user.pk)
    with api_client(app_server, user) as client:
        assert client.delete(url).status_code == 204
    assert not Feedback.objects.exists()
