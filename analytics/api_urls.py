from django.urls import path

from . import api

app_name = "analytics_api"
urlpatterns = [
    path("dashboard", api.dashboard, name="dashboard"),
    path("report", api.report, name="report"),
]
