"""The JSON API of a conversation's title (docs/api.md): ``POST`` asks the model for a new one
from the branch the conversation reads along, ``PATCH`` sets one by hand."""

from asgiref.sync import sync_to_async
from django.http import JsonResponse

from analytics import quotas
from core.draining import refuse_while_draining
from core.errors import error_response
from core.request_id import current_request_id

from . import services, titles
from .api import _own_conversation, api_view, conversation_json, read_json


def _rename(user, conversation_id: int, body: dict):
    conversation = _own_conversation(user, conversation_id)
    return services.rename_conversation(conversation=conversation, title=body.get("title"))


@api_view("POST", "PATCH")
async def conversation_title(request, user, conversation_id: int):
    body = read_json(request)  # POST takes no fields; a body that is not JSON is still refused
    if request.method == "PATCH":
        conversation = await sync_to_async(_rename)(user, conversation_id, body)
        return JsonResponse(conversation_json(conversation))
    return await _regenerate(request, user, conversation_id)


@refuse_while_draining  # it calls the upstream: a stopping process takes no new calls
async def _regenerate(request, user, conversation_id: int):
    try:
        conversation = await titles.regenerate_title(
            user=user, conversation_id=conversation_id, request_id=current_request_id()
        )
    except quotas.QuotaExceeded as exc:  # the call path recorded it (stage "title")
        return error_response(exc)
    return JsonResponse(conversation_json(conversation))
