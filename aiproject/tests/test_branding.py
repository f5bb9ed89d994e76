"""The admin is branded as the product and every page has its icon (no /favicon.ico 404)."""

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_favicon_ico_is_the_products_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"


@pytest.mark.parametrize("url", ["/admin/login/", "/accounts/login/"])
def test_pages_link_the_icon_and_never_say_django(client, url):
    html = client.get(url).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    assert "Django" not in html


def test_admin_pages_carry_the_product_name(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "x"))
    html = client.get(reverse("admin:index")).content.decode()
    assert "<title>Administration | AI Chat admin</title>" in html
    assert "<span>AI Chat admin</span>" in html and "Django" not in html
    assert '<link rel="stylesheet" href="/static/site/admin.css">' in html


@pytest.mark.parametrize(
    ("url", "heading"),
    [
        ("admin:analytics_aicall_changelist", "AI calls"),  # read-only: Django says "to view"
        ("admin:analytics_modelprice_changelist", "Model prices"),
        ("admin:auth_user_changelist", "Users"),
    ],
)
def test_a_list_is_titled_by_what_it_lists(client, django_user_model, url, heading):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "x"))
    html = client.get(reverse(url)).content.decode()
    assert f"<title>{heading} | AI Chat admin</title>" in html
    assert f"<h1>{heading}</h1>" in html
    assert not re.search(r"Select [\w ]+ to (change|view)", html)
