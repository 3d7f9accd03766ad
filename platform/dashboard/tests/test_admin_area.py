"""The admin area: admins only, CSRF-checked, every write audited; a password or camera login
shown once; the audit log filtered and paged."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from access.models import Assignment
from access.services import record_login_failure, visible_devices
from audit.models import AuditEntry
from audit.services import audit
from control.models import SitePolicy
from fleet.credentials import check_mosquitto_hash
from fleet.models import Device, DeviceCredential
from fleet.services import provision_device

pytestmark = pytest.mark.django_db

PAGES = ("/manage/", "/manage/sites/", "/manage/cameras/", "/manage/audit/")


@pytest.fixture
def people():
    tag = uuid.uuid4().hex[:6]
    users = get_user_model()
    admin = users.objects.create_user(f"boss-{tag}", password="pw", is_staff=True)
    operator = users.objects.create_user(f"op-{tag}", password="pw")
    camera = provision_device(f"adm-{tag}", name="Yard gate", site="North farm")
    return admin, operator, camera


def signed_in(user, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("at", "pk"))


def test_operators_get_403_and_strangers_the_sign_in_page(people):
    admin, operator, camera = people
    client = signed_in(operator)
    for url in (*PAGES, f"/manage/people/{admin.username}/"):
        assert client.get(url).status_code == 403, url
        assert Client().get(url)["Location"].startswith("/login/"), url
    writes = {
        "/manage/": {"username": "mallory", "role": "admin"},
        f"/manage/people/{operator.username}/role": {"role": "admin"},
        f"/manage/people/{admin.username}/lock": {"locked": "1"},
        f"/manage/people/{admin.username}/password": {},
        "/manage/cameras/": {"device_id": "rogue-cam"},
        f"/manage/cameras/{camera.device_id}/": {"site": "Elsewhere"},
        "/manage/sites/": {"site": "North farm", "policy": "fixed-6"},
    }
    for url, data in writes.items():
        assert client.post(url, data).status_code == 403, url
    operator.refresh_from_db()
    assert not operator.is_staff and not get_user_model().objects.filter(username="mallory")
    assert not Device.objects.filter(device_id="rogue-cam").exists()
    assert not SitePolicy.objects.exists() and AuditEntry.objects.count() == 0
    assert "/manage/" not in client.get("/").content.decode()  # no link to it either
    assert 'href="/manage/"' in signed_in(admin).get("/").content.decode()


def test_every_page_renders_for_an_admin_and_writes_need_the_csrf_token(people):
    admin, operator, _ = people
    client = signed_in(admin, csrf=True)
    for url in (*PAGES, f"/manage/people/{operator.username}/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"Admin" in response.content and b"csrfmiddlewaretoken" in response.content
    refused = client.post("/manage/", {"username": "no-token", "role": "operator"})
    assert refused.status_code == 403
    assert not get_user_model().objects.filter(username="no-token").exists()


def test_a_new_person_gets_a_password_shown_once_and_can_sign_in(people):
    admin, *_ = people
    client = signed_in(admin)
    response = client.post("/manage/", {"username": "ana", "email": "", "role": "operator"})
    page = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    password = re.search(r'<code id="secret">([^<]+)</code>', page).group(1)
    assert Client().login(username="ana", password=password)
    ana = get_user_model().objects.get(username="ana")
    assert not ana.is_staff and password not in ana.password
    (entry,) = entries("user.create")
    assert entry.username == admin.username and entry.target == "user:ana"
    assert entry.after == {"role": "operator", "active": True, "email": ""}
    assert password not in json.dumps([entry.before, entry.after])
    assert password not in client.get("/manage/people/ana/").content.decode()  # once
    again = client.post("/manage/", {"username": "ANA", "role": "admin"})
    assert again.status_code == 400 and b"already an account named ANA" in again.content


def test_role_lock_unlock_and_password_reset_are_audited(people):
    admin, operator, _ = people
    client = signed_in(admin)
    base = f"/manage/people/{operator.username}/"
    page = client.post(base + "role", {"role": "admin"}, follow=True).content.decode()
    assert f"{operator.username} is now an admin." in page
    operator.refresh_from_db()
    assert operator.is_staff
    client.post(base + "role", {"role": "operator"})
    client.post(base + "lock", {"locked": "1"})
    operator.refresh_from_db()
    assert not operator.is_active
    assert not Client().login(username=operator.username, password="pw")
    for _ in range(5):
        record_login_failure(operator.username, "10.0.0.9")
    page = client.post(base + "lock", {"locked": "0"}, follow=True).content.decode()
    assert "can sign in again" in page
    operator.refresh_from_db()
    assert operator.is_active and Client().login(username=operator.username, password="pw")
    response = client.post(base + "password")
    new = re.search(r'<code id="secret">([^<]+)</code>', response.content.decode()).group(1)
    assert not Client().login(username=operator.username, password="pw")
    assert Client().login(username=operator.username, password=new)
    actions = list(
        AuditEntry.objects.filter(target=f"user:{operator.username}")
        .order_by("at", "pk")
        .values_list("action", flat=True)
    )
    assert actions == ["user.role", "user.role", "user.lock", "user.unlock", "user.password"]
    assert all(e.username == admin.username for e in AuditEntry.objects.all())


def test_an_admin_cannot_lock_or_demote_themselves(people):
    admin, *_ = people
    client = signed_in(admin)
    base = f"/manage/people/{admin.username}/"
    page = client.post(base + "lock", {"locked": "1"}, follow=True).content.decode()
    assert "You cannot lock your own account" in page
    page = client.post(base + "role", {"role": "operator"}, follow=True).content.decode()
    assert "You cannot change the role of your own account" in page
    admin.refresh_from_db()
    assert admin.is_active and admin.is_staff and AuditEntry.objects.count() == 0


def test_camera_scope_added_and_removed(people):
    admin, operator, camera = people
    other = provision_device(f"adm-other-{uuid.uuid4().hex[:6]}", site="Depot")
    client = signed_in(admin)
    url = f"/manage/people/{operator.username}/scope"
    client.post(url, {"device": camera.device_id, "site": ""})
    client.post(url, {"device": "", "site": "Depot"})
    assert set(visible_devices(operator)) == {camera, other}
    both = client.post(url, {"device": camera.device_id, "site": "Depot"}, follow=True)
    assert "Choose a camera or a site, not both." in both.content.decode()
    page = client.get(f"/manage/people/{operator.username}/").content.decode()
    assert "every camera of site <strong>Depot</strong>" in page
    site = Assignment.objects.get(user=operator, site="Depot")
    client.post(url, {"remove": str(site.pk)})
    assert list(visible_devices(operator)) == [camera]
    adds = [e.after for e in entries("user.scope.add")]
    assert adds == [{"camera": camera.device_id}, {"site": "Depot"}]
    assert [e.before for e in entries("user.scope.remove")] == [{"site": "Depot"}]


def test_a_new_camera_gets_its_login_once_and_moves_between_sites(people, settings, tmp_path):
    settings.MQTT_AUTH_DIR = str(tmp_path)
    admin, *_ = people
    client = signed_in(admin)
    response = client.post(
        "/manage/cameras/", {"device_id": "barn-door", "name": "Barn door", "site": "Home yard"}
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = re.search(r'<pre class="secret" id="secret">([^<]+)</pre>', response.content.decode())
    issued = json.loads(secret.group(1).replace("&quot;", '"'))
    assert issued["device_id"] == issued["username"] == "barn-door"
    stored = DeviceCredential.objects.get(device__device_id="barn-door")
    assert check_mosquitto_hash(issued["password"], stored.password_hash)
    assert "barn-door:" in (tmp_path / "devices.passwd").read_text()
    device = Device.objects.get(device_id="barn-door")
    assert (device.name, device.site) == ("Barn door", "Home yard")
    page = client.get("/manage/cameras/").content.decode()
    assert issued["password"] not in page
    twice = client.post("/manage/cameras/", {"device_id": "barn-door"})
    assert twice.status_code == 400 and b"exists already" in twice.content
    bad = client.post("/manage/cameras/", {"device_id": "strata-ingest"}, follow=True)
    assert "are the platform&#x27;s" in bad.content.decode()
    client.post(
        "/manage/cameras/barn-door/", {"name": "Barn door", "site": "South farm", "is_active": "on"}
    )
    device.refresh_from_db()
    assert device.site == "South farm" and device.is_active
    (moved,) = entries("device.identity")
    assert moved.before == {"site": "Home yard"} and moved.after == {"site": "South farm"}
    client.post("/manage/cameras/barn-door/login", {"revoke": "1"})
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert "barn-door:" not in (tmp_path / "devices.passwd").read_text()
    assert [e.action for e in AuditEntry.objects.order_by("at", "pk")] == [
        "device.credentials.issue",
        "device.identity",
        "device.credentials.revoke",
    ]


def test_a_site_and_its_policy(people):
    admin, *_ = people
    client = signed_in(admin)
    client.post("/manage/sites/", {"site": "Hill pasture", "policy": "fixed-6"})
    assert SitePolicy.objects.get(site="Hill pasture").policy == "fixed-6"
    page = client.get("/manage/sites/").content.decode()
    assert "Hill pasture" in page and "North farm" in page  # a policy's site, a camera's
    client.post("/manage/sites/", {"site": "Orchard", "policy": ""})  # new: kept by its policy
    assert SitePolicy.objects.get(site="Orchard").policy == "robust"
    SitePolicy.objects.filter(site="Orchard").delete()
    client.post("/manage/sites/", {"site": "Hill pasture", "policy": ""})
    assert not SitePolicy.objects.filter(site="Hill pasture").exists()
    changes = [
        (e.before, e.after) for e in entries("site.policy") if e.target == "site:Hill pasture"
    ]
    assert changes == [
        ({"policy": ""}, {"policy": "fixed-6"}),
        ({"policy": "fixed-6"}, {"policy": ""}),
    ]
    bad = client.post("/manage/sites/", {"site": "X", "policy": "magic"})
    assert bad.status_code == 400 and b"magic is not one of the available" in bad.content


def test_the_audit_log_filters_by_camera_actor_and_time_and_pages_newest_first(people):
    from control.policies import fixed
    from control.services import decide_tier, link_state

    admin, operator, camera = people
    for i in range(120):
        audit(admin, "device.controls", "device:elsewhere", {"fps": i}, {"fps": i + 1})
    decide_tier(camera, fixed(3), link_state(camera))  # a controller decision: tier 12 → 3
    client = signed_in(admin)
    page = client.get("/manage/audit/").content.decode()
    assert "121 entries" in page and "page 1 of 3" in page
    assert page.index("controller") < page.index("fps 119 → 120")  # newest first
    last = client.get("/manage/audit/", {"page": "3"}).content.decode()
    assert "fps 0 → 1" in last and "fps 50 → 51" not in last and "page 3 of 3" in last
    mine = client.get("/manage/audit/", {"camera": camera.device_id}).content.decode()
    assert "1 entry matches" in mine and "fps" not in mine
    assert "Fixed k=3 (tier 12 → 3) <small>(policy robust)</small>" in mine
    by_controller = client.get("/manage/audit/", {"actor": "controller"}).content.decode()
    assert "1 entry matches" in by_controller
    by_admin = client.get("/manage/audit/", {"actor": admin.username, "page": "2"})
    assert "120 entries match" in by_admin.content.decode()
    later = timezone.localtime() + timedelta(hours=1)
    future = client.get("/manage/audit/", {"since": later.strftime("%Y-%m-%dT%H:%M")})
    assert "No change matches these filters." in future.content.decode()
    for bad in ({"since": "yesterday"}, {"actor": "nobody"}, {"page": "0"}):
        response = client.get("/manage/audit/", bad)
        assert response.status_code == 400 and b"Bad query parameter" in response.content
