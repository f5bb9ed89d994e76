"""The JSON API of the chat (documented in docs/api.md). Views parse, check, call one service."""

import asyncio
import functools
import json

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user
from django.http import Http404, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from analytics import quotas
from core.db_thread import db, through_cancel
from core.draining import refuse_while_draining
from core.errors import AppError, error_json, error_response
from core.outages import outage_response
from core.request_id import current_request_id
from experiments.services import rate_reply, remove_feedback

from . import filing, followers, runner, selectors, services, streaming
from .models import Conversation, Message
from .sse import sse_event
from .sse_response import sse_response
from .state import NOT_RETRYABLE
from .stream_limits import take_slot


def json_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return error_json(status, {"code": code, "message": message, **extra})


class NotAuthenticated(AppError):
    status = 401
    code = "not_authenticated"


def api_view(*methods: str, authenticates: bool = False):
    """Wrap an async API view: methods, a logged-in user (401 JSON), errors as JSON.

    ``authenticates``: the view looks the session's user up itself, in the database call it
    makes anyway (``authenticated()``; one thread hand-off fewer), and gets ``None`` for the user.
    """

    def decorate(view):
        @require_http_methods(list(methods))
        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs):
            user = None
            if not authenticates:
                try:
                    user = await db(_authenticate, request)
                except Exception as exc:
                    if response := outage_response(request, exc):
                        return response
                    raise
                if not user.is_authenticated:
                    return error_response(NotAuthenticated("Log in to use the API."))
            try:
                return await view(request, user, *args, **kwargs)
            except Http404:
                return json_error(404, "not_found", "No such object.")
            except quotas.QuotaExceeded as exc:
                # A view that authenticates has set the request's user by then.
                who = user if user is not None else request._cached_user
                await sync_to_async(quotas.record_refusal)(exc, user_id=who.pk, stage="request")
                return error_response(exc)  # 429 naming the limit, with Retry-After
            except AppError as exc:  # the chat's, the experiments' refusals
                return error_response(exc)
            except Exception as exc:
                # The database (or Redis) is down: 503 database_unavailable (retryable,
                # Retry-After) within DB_CONNECT_TIMEOUT_SECONDS (core/outages.py), not 500.
                if response := outage_response(request, exc):
                    return response
                raise

        return wrapper

    return decorate


def _authenticate(request):
    """The session's user, looked up in a worker thread that gives its connection back at once.

    ``request.auser()`` would run in the request's own thread (core/handlers.py), whose
    connection Django releases only when the request ends (a stream's: when it starts streaming).
    """
    user = get_user(request)
    request._cached_user = request._acached_user = user  # what request.user/auser() return
    return user


def authenticated(request):
    """The session's logged-in user (for a view that ``authenticates``, in its database call);
    NotAuthenticated (401) if there is none."""
    user = _authenticate(request)
    if not user.is_authenticated:
        raise NotAuthenticated("Log in to use the API.")
    return user


def read_json(request) -> dict:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        # ValueError: malformed JSON, bytes that are not UTF-8, an integer past Python's
        # 4300-digit limit; RecursionError: arrays or objects nested thousands deep.
        raise services.ChatError(
            "The request body is not valid JSON.", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise services.ChatError("The request body must be a JSON object.", code="invalid_json")
    return body


def conversation_json(conversation: Conversation) -> dict:
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "title_generated": conversation.title_generated,
        "url": conversation.get_absolute_url(),
        "updated_at": conversation.updated_at.isoformat(),
        "pinned": conversation.pinned,
        "archived": conversation.archived,
    }


def message_json(message: Message) -> dict:
    data = {
        "id": message.pk,
        "conversation": message.conversation_id,
        "role": message.role,
        "status": message.status,
        "content": message.content,
        "html": message.html,
        "reply_to": message.reply_to_id,
        "parent": message.parent_id,
        "created_at": message.created_at.isoformat(),
    }
    versions = getattr(message, "versions", None)  # on a branch read by selectors
    if versions is not None:
        data["versions"] = {"count": versions.count, "index": versions.index, "ids": versions.ids}
    data["select_url"] = reverse("api:message-select", args=[message.pk])
    if message.role == Message.Role.ASSISTANT:
        data |= {
            "model": message.model,
            "usage": {
                "input_tokens": message.input_tokens,
                "output_tokens": message.output_tokens,
                "total_tokens": message.total_tokens,
                "estimated": message.tokens_estimated,
            },
            "latency_ms": message.latency_ms,
            "ttft_ms": message.ttft_ms,
            "tokens_per_second": message.tokens_per_second,
            "error": (
                {
                    "code": message.error_code,
                    "message": message.error_message,
                    "retryable": message.error_code not in NOT_RETRYABLE,
                }
                if message.error_code
                else None
            ),
            "stream_url": reverse("api:message-stream", args=[message.pk]),
            "feedback": _feedback_json(getattr(message, "feedback", None)),
        }
    return data


def _own_conversation(user, conversation_id: int, conversations=Conversation.objects):
    conversation = get_object_or_404(conversations, pk=conversation_id, user=user)
    conversation.user = user  # it is this user: posting reads it, and need not load it again
    return conversation


def _own_reply(user, message_id: int) -> Message:
    reply = get_object_or_404(
        Message.objects.select_related("conversation", "reply_to", "feedback"),
        pk=message_id,
        conversation__user=user,
    )
    reply.conversation.user = user
    return reply


@api_view("GET", "POST")
async def conversations(request, user):
    if request.method == "GET":
        query, archived = _list_params(request)
        rows = await sync_to_async(_sidebar_json)(user, query, archived)
        return JsonResponse({"conversations": rows})
    body = read_json(request)
    # No title (or an empty one) leaves it to the first message; any other value must be text.
    title = body.get("title")
    title = "" if title in (None, "") else services.clean_title(title)
    conversation = await sync_to_async(services.create_conversation)(user=user, title=title)
    return JsonResponse(conversation_json(conversation), status=201)


def _list_params(request) -> tuple[str, bool]:
    """The list's ``q`` (search) and ``archived`` (true: the archived ones) parameters."""
    query = request.GET.get("q", "").strip()
    services.refuse_unstorable(query, field="q")
    if len(query) > 200:
        raise services.ChatError("The search is longer than 200 characters.", code="invalid_query")
    archived = request.GET.get("archived", "false").lower()
    if archived not in ("true", "false", "1", "0"):
        raise services.ChatError(
            "'archived' must be true or false.", code="invalid_flag", field="archived"
        )
    return query, archived in ("true", "1")


def _sidebar_json(user, query: str, archived: bool) -> list[dict]:
    found = selectors.conversations_of(user, query=query, archived=archived)
    return [
        conversation_json(c) | {"group": label}
        for label, members in selectors.sidebar_groups(found)
        for c in members
    ]


def _patch_conversation(conversation: Conversation, body: dict) -> None:
    flags = {field: body[field] for field in filing.FLAGS if field in body}
    for field, value in flags.items():  # all checked before anything is saved
        filing.clean_flag(value, field=field)
    if "title" in body or not flags:
        services.rename_conversation(conversation=conversation, title=body.get("title"))
    filing.file_conversation(conversation=conversation, **flags)


@api_view("GET", "PATCH", "DELETE")
async def conversation(request, user, conversation_id: int):
    conversation = await sync_to_async(_own_conversation)(user, conversation_id)
    if request.method == "PATCH":
        await sync_to_async(_patch_conversation)(conversation, read_json(request))
    elif request.method == "DELETE":
        in_progress = await sync_to_async(selectors.replies_in_progress)(conversation)
        # Delete first, then stop: a runner that ends finds its reply gone and tells its
        # streams `not_found`, rather than storing a cancelled reply a moment before the delete.
        await conversation.adelete()
        for message_id, runner_channel in in_progress:
            await streaming.send_stop(runner_channel, message_id)
        return HttpResponse(status=204)
    return JsonResponse(conversation_json(conversation))


def _accepted_json(user_message: Message, reply: Message) -> dict:
    return {
        "user_message": message_json(user_message),
        "assistant_message": {"id": reply.pk, "status": reply.status},
        "stream_url": reverse("api:message-stream", args=[reply.pk]),
    }


def wants_stream(request) -> bool:
    """The post asks for its reply's events in its own response (``Accept:
    text/event-stream``) rather than a 202 and a second request to ``stream_url``."""
    return "text/event-stream" in request.headers.get("Accept", "")


def _accepted(
    request, user, posted: services.Posted, generation: streaming.Generation
) -> HttpResponseBase:
    """202 with the stored message and where to read the reply; or, if the post asked for it
    (``wants_stream``), the reply's events at once, after an ``accepted`` event carrying the
    same JSON. The stream is read here, where the reply runs, whichever process that is."""
    body = _accepted_json(posted.user_message, posted.reply)
    # The user's open streams on this process are counted as for GET stream_url; at the most
    # already, the post is answered as without the header (its reply runs: the client opens
    # the stream when it has a slot).
    if wants_stream(request) and (slot := take_slot(user.pk)):
        return sse_response(
            posted.reply.pk,
            followers.follow_local(generation, 0),
            slot,
            first=sse_event("accepted", body),
        )
    return JsonResponse(body, status=202)


def _post_message(request, conversation_id: int, channel: str):
    user = authenticated(request)
    content = read_json(request).get("content")
    # One statement finds the conversation and whether a reply is in progress in it.
    conversation = selectors.conversation_to_post_to(user, conversation_id)
    if conversation is None:
        raise Http404
    posted = services.post_message(
        conversation=conversation, content=content, runner_channel=channel, start=True
    )
    return user, posted, posted.prepared


def _regenerate(request, message_id: int, channel: str):
    user = authenticated(request)
    reply = _own_reply(user, message_id)
    posted = services.regenerate_reply(reply=reply, runner_channel=channel, start=True)
    return user, posted, posted.prepared


async def _store_and_start(request, store, *args) -> HttpResponseBase:
    """Look the user up, store the message and start its reply in one database call (one
    hand-off to the database thread), then run the reply here, and answer (``_accepted``).

    If the client goes away meanwhile, the reply is still started (and written), never left
    behind with its quota held.
    """
    channel = await streaming.control_channel()
    (user, posted, prepared), cancelled = await through_cancel(db(store, request, *args, channel))
    generation = runner.start(
        posted.reply.pk,
        user_id=user.pk,
        request_id=current_request_id(),
        prepared=prepared,
        session_key=request.session.session_key or "",
    )
    if cancelled:
        raise asyncio.CancelledError
    return _accepted(request, user, posted, generation)


@refuse_while_draining
@api_view("POST", authenticates=True)
async def post_message(request, user, conversation_id: int):
    return await _store_and_start(request, _post_message, conversation_id)


@refuse_while_draining
@api_view("POST", authenticates=True)
async def regenerate(request, user, message_id: int):
    return await _store_and_start(request, _regenerate, message_id)


@api_view("POST")
async def stop(request, user, message_id: int):
    reply = await sync_to_async(_own_reply)(user, message_id)
    await sync_to_async(services.request_stop)(reply=reply)
    await streaming.send_stop(reply.runner_channel, reply.pk)
    return JsonResponse({"id": reply.pk, "status": "stopping"}, status=202)


def _feedback_json(feedback) -> dict | None:
    if feedback is None:
        return None
    return {
        "rating": "up" if feedback.rating > 0 else "down",
        "comment": feedback.comment,
        "updated_at": feedback.updated_at.isoformat(),
    }


@api_view("POST", "DELETE")
async def feedback(request, user, message_id: int):
    reply = await sync_to_async(_own_reply)(user, message_id)
    if request.method == "DELETE":
        await sync_to_async(remove_feedback)(message=reply)
        return HttpResponse(status=204)
    body = read_json(request)
    services.check_rateable(reply)
    saved = await sync_to_async(rate_reply)(
        message=reply, user=user, rating=body.get("rating"), comment=body.get("comment")
    )
    return JsonResponse({"message_id": reply.pk, "feedback": _feedback_json(saved)})


@api_view("GET")
async def message(request, user, message_id: int):
    found = await sync_to_async(_own_reply)(user, message_id)
    return JsonResponse(message_json(found))


def quota_json(user) -> dict:
    status = quotas.user_status(user)
    return {
        "exempt": status["exempt"],
        "requests_per_minute": status["requests_per_minute"],
        "global_cap_reached": status["global_cap_reached"],
        "meters": [meter.as_json() for meter in status["meters"]],
    }


@api_view("GET")
async def quota(request, user):
    return JsonResponse(await sync_to_async(quota_json)(user))
