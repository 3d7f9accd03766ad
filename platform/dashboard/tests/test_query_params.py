"""Every query parameter of every dashboard page answers a bad value with 400 (or a clamp),
never 500: a signed-in operator throws arbitrary strings at each one (issue 13, finding 8)."""

from __future__ import annotations

import pytest
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

# (page, its query parameters) for every GET view of dashboard/urls.py; "{device}" and
# "{frame}" are filled with the operator's own camera and frame.
PAGES = [
    ("/", ("site", "health", "q")),
    ("/devices/{device}/", ()),
    ("/devices/{device}/state", ()),
    ("/devices/{device}/archive/", ("day", "hour", "page", "motion")),
    ("/frames/{frame}/", ("k", "compare_k")),
    ("/frames/{frame}/decode", ("k",)),
    ("/frames/{frame}/image", ("k", "format")),
    ("/frames/{frame}/latents.png", ()),
    ("/exports/", ()),
]
CASES = [(page, name) for page, names in PAGES for name in names]

# The values that returned 500 before (superscripts pass str.isdigit, dates past the
# calendar's end), and their relatives.
KNOWN_BAD = [
    "²",
    "9999-12-31",
    "0001-01-01",
    "٣",
    "99999999999999999999999",
    "-1",
    "0",
    "\x00",
    "a\x00b",
    "1e3",
    " 3",
    "",
]


def status_for(client: Client, ids: dict, page: str, name: str, value: str) -> int:
    return client.get(page.format(**ids), {name: value}).status_code


@pytest.mark.parametrize(("page", "name"), CASES)
def test_known_bad_values_are_refused_not_crashed(operator_client, page, name):
    client, ids = operator_client
    for value in KNOWN_BAD:
        status = status_for(client, ids, page, name, value)
        assert status < 500, f"{page}?{name}={value!r} answered {status}"


@pytest.mark.parametrize(
    ("page", "name", "value"),
    [
        ("/devices/{device}/archive/", "hour", "²"),
        ("/devices/{device}/archive/", "hour", "24"),
        ("/devices/{device}/archive/", "day", "9999-12-31"),
        ("/devices/{device}/archive/", "day", "yesterday"),
        ("/devices/{device}/archive/", "page", "0"),
        ("/frames/{frame}/", "k", "²"),
        ("/frames/{frame}/", "compare_k", "x"),
        ("/frames/{frame}/image", "k", "²"),
        ("/frames/{frame}/decode", "k", "99999999999999999999999"),
        ("/", "q", "a\x00b"),
    ],
)
def test_bad_values_get_400_with_the_reason(operator_client, page, name, value):
    client, ids = operator_client
    response = client.get(page.format(**ids), {name: value})
    assert response.status_code == 400
    assert name.encode() in response.content  # the page says which parameter was wrong


def test_good_values_still_work(operator_client):
    client, ids = operator_client
    frame = f"/frames/{ids['frame']}"
    assert client.get(f"{frame}/", {"k": "4", "compare_k": "2"}).status_code == 200
    assert client.get(f"{frame}/", {"k": "12"}).context["k"] == 6  # clamped to the layers
    assert client.get(f"{frame}/decode", {"k": "6"}).json()["ready"] is True
    assert client.get(f"{frame}/image", {"k": "6", "format": "png"}).status_code == 200
    archive = f"/devices/{ids['device']}/archive/"
    assert client.get(archive, {"hour": "23"}).context["hour"].start.hour == 23
    assert client.get(archive, {"day": "2026-01-02"}).status_code == 200
    assert client.get("/", {"q": "Params", "health": "offline"}).status_code == 200


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=st.sampled_from(CASES), value=st.text(max_size=40))
@example(case=("/devices/{device}/archive/", "hour"), value="²")
@example(case=("/devices/{device}/archive/", "day"), value="9999-12-31")
@example(case=("/frames/{frame}/", "k"), value="²")
def test_no_query_value_makes_a_page_fail(operator_client, case, value):
    client, ids = operator_client
    page, name = case
    status = status_for(client, ids, page, name, value)
    assert status < 500, f"{page}?{name}={value!r} answered {status}"


AUDIT = ("camera", "actor", "action", "since", "until", "page")  # the admin area's audit log


@pytest.fixture
def admin_client():
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_user("params-admin", is_staff=True)
    client = Client(raise_request_exception=False)
    client.force_login(admin)
    return client


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from(AUDIT), value=st.text(max_size=40) | st.sampled_from(KNOWN_BAD))
@example(name="since", value="9999-12-31T23:59")
@example(name="until", value="2026-02-30T10:00")
def test_no_query_value_makes_the_audit_log_fail(admin_client, name, value):
    status = admin_client.get("/manage/audit/", {name: value}).status_code
    assert status < 500, f"/manage/audit/?{name}={value!r} answered {status}"
