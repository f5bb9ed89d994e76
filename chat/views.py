"""Server-rendered pages: the chat, sign-up, and the CSRF failure answer."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.csrf import csrf_failure as default_csrf_failure

from analytics import quotas
from core.errors import error_json

from . import selectors
from .models import Conversation, Message


def stall_notice_ms() -> int:
    """After how long without text the page says it is still waiting for the model: a few
    seconds, and well before the server gives up on a silent upstream (a third of its timeout)."""
    return int(min(4.0, settings.AI_STREAM_IDLE_TIMEOUT_SECONDS / 3) * 1000)


@login_required
def home(request):
    return _chat_page(request, conversation=None)


@login_required
def conversation_page(request, conversation_id: int):
    conversation = get_object_or_404(Conversation, pk=conversation_id, user=request.user)
    return _chat_page(request, conversation=conversation)


@login_required
def message_list(request, conversation_id: int):
    """The messages of the branch the conversation reads along, as the page renders them (an
    HTML fragment: static/chat/versions.js swaps it in after a switch or an edit)."""
    conversation = get_object_or_404(Conversation, pk=conversation_id, user=request.user)
    response = render(
        request,
        "chat/_messages.html",
        {"conversation": conversation, "messages": selectors.visible_messages(conversation)},
    )
    response["Cache-Control"] = "no-store"  # the branch changes with every switch
    return response


def _chat_page(request, *, conversation):
    messages = selectors.visible_messages(conversation) if conversation else []
    streaming_id = next(
        (
            m.pk
            for m in reversed(messages)
            if m.role == Message.Role.ASSISTANT and m.status in Message.IN_PROGRESS
        ),
        None,
    )
    return render(
        request,
        "chat/chat.html",
        {
            "conversation_groups": selectors.sidebar_groups(
                selectors.conversations_of(request.user)
            ),
            "conversation": conversation,
            "messages": messages,
            "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
            "stall_notice_ms": stall_notice_ms(),
            "streaming_message_id": streaming_id,
            "quota": quotas.user_status(request.user),
        },
    )


def signup(request):
    if not settings.CHAT_SIGNUP_ENABLED:
        raise Http404("Sign-up is disabled.")
    if request.user.is_authenticated:
        return redirect("chat:home")
    form: UserCreationForm = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("chat:home")
    return render(request, "registration/signup.html", {"form": form})


def login_locked_out(request, response=None, credentials=None):
    """django-axes' answer to a login refused for too many failures (settings.AXES_*): 429,
    ``Retry-After``, and a page (or JSON for a client that asks for it) saying for how long."""
    seconds = settings.LOGIN_LOCKOUT_SECONDS
    minutes = -(-seconds // 60)
    message = (
        f"Too many failed logins for this account from your address. Try again in "
        f"{minutes} minute{'s' if minutes != 1 else ''}, or ask an administrator to unlock it."
    )
    locked: HttpResponse
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        locked = error_json(
            429, {"code": "login_locked", "message": message, "retry_after": seconds}
        )
    else:
        locked = render(request, "registration/locked_out.html", {"message": message}, status=429)
    locked["Retry-After"] = str(seconds)
    return locked


def csrf_failure(request, reason=""):
    if request.path.startswith("/api/"):
        return error_json(
            403,
            {
                "code": "csrf_failed",
                "message": f"CSRF check failed ({reason}). Send the X-CSRFToken header with "
                "the csrftoken cookie's value; over HTTPS also a Referer or Origin header "
                "of this site.",
            },
        )
    return default_csrf_failure(request, reason=reason)
