"""The page lists the user's devices with their state (online, how far synced) and removes one,
closing its socket (a real Chromium, the web role, a real sync client socket)."""
import pytest
from playwright.sync_api import expect

from apps.sync import services
from tests.realtime.test_sockets import closed_with, token
from tests.sync.device import Device as DeviceSocket
from tests.web.conftest import sign_in


@pytest.fixture
def laptop(user_factory):
    """Alice's device, and her token. Made before the browser starts (no ORM under Playwright)."""
    alice = user_factory(username="alice")
    device = services.device_register(user=alice, name="laptop", platform="cli")
    return str(device.id), token(alice)


def test_the_page_lists_devices_online_and_removes_one(web, laptop, browser):
    device_id, key = laptop
    page = sign_in(browser, web, "alice")
    row = page.locator("#device-list li", has_text="laptop")
    expect(row).to_contain_text("laptop (cli) — never connected")

    device = DeviceSocket(web, token=key, device_id=device_id)
    device.ready()
    try:
        expect(row).to_contain_text("online", timeout=20_000)  # the list refreshes every 10 s
    except AssertionError as failure:  # seen in fresh clones: say who closed the socket, and why
        raise AssertionError(f"{failure}\nthe device's socket: close code {device.ws.close_code}, "
                             f"reason {device.ws.close_reason!r}") from failure

    page.get_by_role("button", name="Remove laptop").click()
    expect(page.locator("#device-list li", has_text="laptop")).to_have_count(0)
    expect(page.locator("#device-list li")).to_have_count(1)  # the page itself: a device of its own (web)
    assert closed_with(device) == 4404, "the removed device's socket closes"
