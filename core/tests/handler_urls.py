"""URLs for core/tests/test_handlers.py: sync views that report the thread they ran on."""

import threading
import time

from django.contrib.auth import get_user_model
from django.db import connection
from django.http import JsonResponse
from django.urls import path

# Idents of the threads that ran a request with ?record=1, in order.
recorded: list[int] = []


def thread(request):
    if request.GET.get("record"):
        recorded.append(threading.get_ident())
    time.sleep(float(request.GET.get("sleep", 0)))
    if request.GET.get("query"):
        get_user_model().objects.exists()
        assert connection.connection is not None
    return JsonResponse({"ident": threading.get_ident(), "name": threading.current_thread().name})


urlpatterns = [path("thread", thread)]
