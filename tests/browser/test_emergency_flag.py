"""The red emergency flag in a real browser: the demo's threat-to-life case flags the secretary's pages."""

from __future__ import annotations

from .conftest import screenshot


def test_the_secretary_sees_the_emergency_flag_and_follows_it_to_the_case(live, login):
    secretary = login("secretary")
    banner = secretary.locator(".emergency-flag")
    assert banner.count() == 1 and banner.is_visible()
    assert banner.get_attribute("role") == "alert"
    text = banner.inner_text()
    assert "Экстренная ситуация: угроза жизни ребенка — " in text and "открыто" in text
    color = banner.evaluate("node => getComputedStyle(node).backgroundColor")
    assert color == "rgb(180, 35, 24)"  # the red of kurator.css (--red)
    screenshot(secretary, "emergency-flag")

    secretary.locator(".emergency-flag a").first.click()
    secretary.wait_for_load_state()
    assert secretary.locator("h1").inner_text().startswith("Личное дело")
    assert "по этому делу экстренные меры не завершены" in secretary.locator(".emergency-flag").inner_text()

    school = login("school")
    assert school.locator(".emergency-flag").count() == 0
