"""What a viewport shows, checked on its pixels (a page that loaded is not an image that
rendered)."""

from __future__ import annotations

import time
from io import BytesIO

import numpy as np
from PIL import Image
from playwright.sync_api import Locator


def grey(canvas: Locator) -> np.ndarray:
    """The viewport as the radiologist sees it, in grey levels 0-255."""
    return np.asarray(Image.open(BytesIO(canvas.screenshot())).convert("L"), dtype=float)


def phantom_shown(grey: np.ndarray) -> str:
    """What is wrong with the picture of the synthetic phantom (air around a water
    cylinder with a bony ring, window 40/80), or "" when it is there: black air, a grey
    noisy middle, a white ring."""
    height, width = grey.shape
    middle = grey[height // 2 - 20:height // 2 + 20, width // 2 - 20:width // 2 + 20]
    dark, bright = (grey < 25).mean(), (grey > 230).mean()
    problems = [
        f"uniform (std {grey.std():.1f})" if grey.std() < 40 else "",
        f"little air ({dark:.0%} dark)" if dark < 0.2 else "",
        f"no bone ring ({bright:.1%} white)" if not 0.03 < bright < 0.3 else "",
        f"middle not soft tissue (mean {middle.mean():.0f})"
        if not 60 < middle.mean() < 200 else "",
        f"middle without noise (std {middle.std():.1f})" if middle.std() < 6 else "",
    ]
    return ", ".join(p for p in problems if p)


def wait_for_phantom(canvas: Locator, seconds: float) -> str:
    """Look at the viewport until it shows the phantom (images arrive after the canvas);
    what is still wrong after ``seconds``, or ""."""
    deadline, wrong = time.monotonic() + seconds, "not rendered"
    while wrong and time.monotonic() < deadline:
        wrong = phantom_shown(grey(canvas))
        if wrong:
            time.sleep(0.25)
    return wrong
