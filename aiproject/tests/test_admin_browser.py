"""The admin in a real Chromium: branded as the product with its icon on every page (the chat's
too), readable on a 390 px phone (tables scroll in their box, no label broken inside a word), the
prompt diff wrapping at 1280 px, and the comparison page's labels and buttons as a user sees them
(Promote promotes; without the permission there is no button and a forged post is refused)."""

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from analytics.alerts.models import AlertEvent, AlertRule
from analytics.rollups import rollup_range
from analytics.tests.factories import make_call, make_user
from chat.tests.browser import BROWSER_MARKS
from chat.tests.conftest import browser  # noqa: F401 (the module's Chromium)
from devtools.live import login_cookies
from experiments import services
from experiments.models import Experiment, PromptVersion, Variant

pytestmark = BROWSER_MARKS

LONG_LINE = " ".join(f"word{i}" for i in range(60))  # far wider than the diff box

# Words split over two lines inside the given elements' text (a break at a space, hyphen, slash
# or punctuation is fine; inside a word it is not). Code, SVG and form controls are left out.
BROKEN_WORDS_JS = """
(selector) => {
  const broken = [];
  for (const root of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      const parent = node.parentElement;
      if (!parent || parent.closest("pre, textarea, script, style, svg, code, select")) continue;
      const pieces = /[^\\s\\/\\-\\u2013\\u2014,.:;()]+/g;
      let m;
      while ((m = pieces.exec(node.textContent))) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set(
          [...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))
        );
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}
"""


@pytest.fixture
def staff(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "x-pass-123456")


@pytest.fixture
def context_for(browser, app_server, staff):  # noqa: F811 (the fixture imported above)
    """Return a new browser context logged in as the superuser, at ``width`` px."""
    contexts = []

    def make(width: int = 1280, *, logged_in: bool = True):
        context = browser.new_context(viewport={"width": width, "height": 900})
        if logged_in:
            cookies = login_cookies(staff)
            context.add_cookies(
                [{"name": "sessionid", "value": cookies["sessionid"], "url": app_server.base_url}]
            )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def data(transactional_db):
    """A running canary with a day of calls and ratings, a prompt diff, and a fired alert."""
    v1 = services.new_prompt_version(
        name="chat-system", system_prompt="You are helpful.", model="m-control",
        temperature=Decimal("0.70"), max_tokens=1000,
    )  # fmt: skip
    v2 = services.new_prompt_version(
        name="chat-system", system_prompt=f"You are helpful.\n{LONG_LINE}", model="m-treat",
        temperature=Decimal("0.70"), max_tokens=1000,
    )  # fmt: skip
    services.make_live(version=v1)
    experiment = Experiment.objects.create(key="canary", prompt_name="chat-system")
    Variant.objects.create(
        experiment=experiment, key="control", prompt_version=v1, weight=50, is_control=True
    )
    Variant.objects.create(experiment=experiment, key="experiment", prompt_version=v2, weight=50)
    services.start_experiment(experiment=experiment)
    now = timezone.now()
    users = [make_user(f"operator{n:03d}") for n in range(3)]
    for key, latency in (("control", 1000), ("experiment", 1400)):
        for n in range(6):
            make_call(
                user=users[n % 3],
                created_at=now - timedelta(minutes=n + 1),
                status="error" if n == 0 else "ok",
                variant=f"canary/{key}",
                latency_ms=latency,
                request_id=f"req-{key}-{n}-with-a-long-request-identifier",
            )
    rollup_range(now - timedelta(days=1), now + timedelta(minutes=1))
    # Seeded by a migration, and gone after the first transactional test's flush.
    rule, _ = AlertRule.objects.get_or_create(
        name="AI call success rate",
        defaults={"metric": "success_rate", "comparison": "lt", "threshold": Decimal("0.95")},
    )
    AlertEvent.objects.create(
        rule=rule, value=Decimal("0.717949"), threshold=rule.threshold, samples=39,
        window_start=now - timedelta(hours=1), window_end=now, started_at=now,
    )  # fmt: skip
    return {"experiment": experiment, "v2": v2, "rule": rule}


def admin_pages(data) -> dict[str, str]:
    e, v2, rule = data["experiment"], data["v2"], data["rule"]
    return {
        "index": "/admin/",
        "calls": "/admin/analytics/aicall/",
        "alert events": "/admin/alerts/alertevent/",
        "alert rule": f"/admin/alerts/alertrule/{rule.pk}/change/",
        "experiment": f"/admin/experiments/experiment/{e.pk}/change/",
        "comparison": f"/admin/experiments/experiment/{e.pk}/compare/",
        "prompt version": f"/admin/experiments/promptversion/{v2.pk}/change/",
        "prompt versions": "/admin/experiments/promptversion/",
        # Site-wide styles keep the analytics pages' user names whole too.
        "dashboard": "/admin/analytics/aicall/dashboard/",
        "quotas": "/admin/quotas/usagequota/overview/",
    }


def visit(page, url: str) -> list[tuple[int, str]]:
    """Open ``url`` and return every failed response (status >= 400) the page caused."""
    failed: list[tuple[int, str]] = []
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return failed


# First in the module: the served process caches content type ids on first use, and the admin
# history written by a promotion points at them; later tests' flushes recreate the content types
# with new ids (in the database only).
def test_the_comparison_page_reads_and_acts_as_a_user_sees_it(context_for, app_server, data):
    page = context_for(1280).new_page()
    experiment = data["experiment"]
    page.goto(app_server.base_url + admin_pages(data)["comparison"])
    heads = page.locator("[data-variant-head]").all_inner_texts()
    assert [" ".join(h.split()) for h in heads] == ["control control group", "experiment treatment"]
    assert page.locator("svg").filter(has_text="Error rate per day").count() == 1

    compare = f"/admin/experiments/experiment/{experiment.pk}/compare/"
    with page.expect_navigation(url=f"**{compare}"):
        page.click("[data-action=promote-experiment]")
    assert "promoted experiment" in page.inner_text(".messagelist")
    assert page.inner_text("[data-value=status]") == "Completed"
    experiment.refresh_from_db()
    assert experiment.status == "completed"
    assert PromptVersion.objects.get(is_live=True) == data["v2"]


def test_every_page_is_branded_with_the_products_icon(context_for, app_server, data):
    base = app_server.base_url
    context = context_for()
    page = context.new_page()
    icons: list[tuple[int, str]] = []
    context.on(
        "response",
        lambda r: (
            icons.append((r.status, r.headers.get("content-type", "")))
            if "favicon" in r.url
            else None
        ),
    )
    for name, path in {**admin_pages(data), "chat": "/"}.items():
        icons.clear()
        assert visit(page, base + path) == [], name
        title = page.title()
        assert "Django" not in title, (name, title)
        assert page.locator("link[rel=icon]").count() == 1, name
        # The browser fetched the page's icon, and it is the product's SVG.
        assert icons and all(s == 200 and "svg" in t for s, t in icons), (name, icons)
        if name != "chat":
            assert page.inner_text("#site-name") == "AI Chat admin", name
            assert title.endswith("| AI Chat admin"), (name, title)
            assert "Django administration" not in page.content(), name

    anonymous = context_for(logged_in=False).new_page()
    for path in ("/admin/login/", "/accounts/login/"):
        assert visit(anonymous, base + path) == [], path
        assert "Django" not in anonymous.title() and "Django" not in anonymous.content(), path
    # Asked for directly (a tool, an old browser), /favicon.ico is the same icon, never a 404.
    response = httpx.get(f"{base}/favicon.ico", follow_redirects=True)
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"


def test_the_admin_is_readable_on_a_phone(context_for, app_server, data):
    page = context_for(390).new_page()
    # The check itself catches a word broken inside: a label forced to break anywhere.
    page.set_content('<p id="probe">Satisfaction</p>')
    page.eval_on_selector(
        "#probe", "el => { el.style.width = '40px'; el.style.wordBreak = 'break-all'; }"
    )
    assert page.evaluate(BROKEN_WORDS_JS, "#probe") == ["Satisfaction"]

    for name, path in admin_pages(data).items():
        page.goto(app_server.base_url + path)
        page.wait_for_load_state("networkidle")
        # The page is as wide as the phone: what is wider scrolls inside its own box.
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, name
        assert page.evaluate(BROKEN_WORDS_JS, "#container") == [], name

    # The comparison's variants table is wider than the phone: it scrolls in its box.
    page.goto(app_server.base_url + admin_pages(data)["comparison"])
    box = page.locator("[data-table=variants]").evaluate(
        """el => { let box = el; while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
                   return box && {scroll: box.scrollWidth, client: box.clientWidth}; }"""
    )
    assert box is not None and box["scroll"] > box["client"]


def test_the_prompt_diff_wraps_inside_its_box_at_1280_px(context_for, app_server, data):
    page = context_for(1280).new_page()
    page.goto(app_server.base_url + admin_pages(data)["prompt version"])
    diff = page.locator("pre.prompt-diff[data-diff=system_prompt]")
    geometry = diff.evaluate(
        """el => { const row = el.closest('.form-row').getBoundingClientRect();
                   const box = el.getBoundingClientRect();
                   return {right: box.right, rowRight: row.right, scroll: el.scrollWidth,
                           client: el.clientWidth, viewport: window.innerWidth}; }"""
    )
    assert geometry["right"] <= geometry["rowRight"] <= geometry["viewport"], geometry
    assert geometry["scroll"] <= geometry["client"], geometry  # wrapped, nothing to scroll to
    last = diff.locator(".diff-added").last
    assert "word59" in last.inner_text()
    # The last word of the long line is on screen, inside the box.
    word = last.evaluate(
        """el => { const node = el.firstChild; const at = node.textContent.indexOf('word59');
                   const range = document.createRange(); range.setStart(node, at);
                   range.setEnd(node, at + 6); return range.getBoundingClientRect().right; }"""
    )
    assert word <= geometry["right"], (word, geometry)


def test_promote_is_refused_in_the_browser_without_the_permission(
    browser,  # noqa: F811
    context_for,
    app_server,
    data,
    django_user_model,
):
    comparison = app_server.base_url + admin_pages(data)["comparison"]
    boss = context_for(1280).new_page()
    boss.goto(comparison)
    promote_url = boss.locator("[data-action=promote-experiment]").evaluate("b => b.form.action")

    operator = django_user_model.objects.create_user("op", password="x-pass-1", is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_experiment", "change_experiment"])
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    cookies = login_cookies(operator)
    context.add_cookies(
        [{"name": "sessionid", "value": cookies["sessionid"], "url": app_server.base_url}]
    )
    page = context.new_page()
    page.goto(comparison)
    # The operator may pause, change the traffic and roll back; no button promotes.
    assert page.locator("[data-action=pause]").is_visible()
    assert page.locator("[data-action^=promote]").count() == 0
    # A promote posted anyway, from the page with its CSRF token, is refused.
    with page.expect_response(promote_url) as answer:
        page.locator("[data-action=pause]").evaluate(
            """(button, url) => {
                 const form = button.form;
                 form.action = url;
                 const field = document.createElement('input');
                 field.type = 'hidden'; field.name = 'promote'; field.value = 'experiment';
                 form.append(field);
                 form.submit();
               }""",
            promote_url,
        )
    assert answer.value.status == 403
    experiment = data["experiment"]
    experiment.refresh_from_db()
    assert experiment.status == "running"
    assert not PromptVersion.objects.get(pk=data["v2"].pk).is_live
    context.close()
