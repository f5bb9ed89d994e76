from django.urls import path

from . import api, api_titles, api_versions, stream_views

app_name = "api"
urlpatterns = [
    path("conversations", api.conversations, name="conversations"),
    path("conversations/<int:conversation_id>", api.conversation, name="conversation"),
    path(
        "conversations/<int:conversation_id>/messages",
        api_versions.conversation_messages,
        name="post-message",
    ),
    path(
        "conversations/<int:conversation_id>/title",
        api_titles.conversation_title,
        name="conversation-title",
    ),
    path("quota", api.quota, name="quota"),
    path("messages/<int:message_id>", api.message, name="message"),
    path("messages/<int:message_id>/stream", stream_views.stream_message, name="message-stream"),
    path("messages/<int:message_id>/stop", api.stop, name="message-stop"),
    path("messages/<int:message_id>/regenerate", api.regenerate, name="message-regenerate"),
    path("messages/<int:message_id>/select", api_versions.select, name="message-select"),
    path("messages/<int:message_id>/edit", api_versions.edit, name="message-edit"),
    path("messages/<int:message_id>/feedback", api.feedback, name="message-feedback"),
]
