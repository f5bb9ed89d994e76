"""The JSON API of a conversation's branches (docs/api.md, "Versions and branches"): read the
branch a conversation reads along, choose another version of a turn, edit a sent message."""

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from core.draining import refuse_while_draining

from . import selectors, services
from .api import (
    _own_conversation,
    _store_and_start,
    api_view,
    authenticated,
    conversation_json,
    message_json,
    post_message,
    read_json,
)
from .models import Conversation, Message


def _branch_json(conversation: Conversation) -> dict:
    messages = selectors.visible_messages(conversation)
    return {
        "conversation": conversation_json(conversation),
        "current_leaf": messages[-1].pk if messages else None,
        "messages": [message_json(m) for m in messages],
    }


def _own_message(user, message_id: int) -> Message:
    message = get_object_or_404(
        Message.objects.select_related("conversation"), pk=message_id, conversation__user=user
    )
    message.conversation.user = user
    return message


@api_view("GET")
async def _list_messages(request, user, conversation_id: int):
    conversation = await sync_to_async(_own_conversation)(user, conversation_id)
    return JsonResponse(await sync_to_async(_branch_json)(conversation))


async def conversation_messages(request, conversation_id: int):
    """GET: the messages of the branch the conversation reads along; POST: send a message."""
    if request.method == "GET":
        return await _list_messages(request, conversation_id)
    return await post_message(request, conversation_id)


def _select(user, message_id: int) -> dict:
    message = _own_message(user, message_id)
    services.select_version(message=message)
    return _branch_json(message.conversation)


@api_view("POST")
async def select(request, user, message_id: int):
    return JsonResponse(await sync_to_async(_select)(user, message_id))


def _edit(request, message_id: int, channel: str):
    user = authenticated(request)
    content = read_json(request).get("content")
    posted = services.edit_message(
        message=_own_message(user, message_id), content=content, runner_channel=channel, start=True
    )
    return user, posted, posted.prepared


@refuse_while_draining
@api_view("POST", authenticates=True)
async def edit(request, user, message_id: int):
    return await _store_and_start(request, _edit, message_id)
