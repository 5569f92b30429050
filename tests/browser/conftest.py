"""The browser tests' shared fixture: one headless Chromium per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, CHROMEDRIVER, CHROMIUM

from support.postgres import services_required


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if services_required():
            pytest.fail(f"headless Chromium is required: {CHROMIUM} and {CHROMEDRIVER}")
        pytest.skip("no Chromium here (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    # The first page a freshly installed Chromium renders can take many seconds
    # (font caches are built then): pay that here, not inside the walk below.
    driver.get("data:text/html,<h1>warm</h1>")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
