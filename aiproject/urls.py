from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

# The admin is branded as the product, never "Django administration".
admin.site.site_header = "AI Chat admin"
admin.site.site_title = "AI Chat admin"
admin.site.index_title = "Administration"

urlpatterns = [
    # Every page links its icon; this answers browsers and tools that ask for /favicon.ico anyway
    # (behind nginx, nginx answers it first).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/", include("chat.auth_urls")),
    path("api/analytics/v1/", include("analytics.api_urls")),
    path("api/", include("chat.api_urls")),
    path("", include("chat.urls")),
]
