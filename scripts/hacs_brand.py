"""Draws the HACS integration's brand images offline with Pillow (no download, no font
service): hacs/custom_components/jarvis/brand/{icon,logo,dark_logo}{,@2x}.png.

    .venv-hacs/bin/python scripts/hacs_brand.py

The icon is a rounded indigo square holding a ring (the assistant listening) around five voice
bars; the logo is the icon followed by "Jarvis" in DejaVu Sans Bold, indigo (white in the dark
theme's `dark_logo`). Shapes are drawn at four
times the size and scaled down, for smooth edges. Sizes follow HA's brand rules: the icon is
square, 256 px (512 px for @2x); the logo is 128 px high (256 px for @2x).
"""

from __future__ import annotations

from pathlib import Path
import sys

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "hacs/custom_components/jarvis/brand"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
BACKGROUND = (43, 48, 120, 255)  # indigo
RING = (96, 205, 255, 255)  # light cyan
BARS = (255, 255, 255, 255)
TEXT = (43, 48, 120, 255)
DARK_TEXT = (255, 255, 255, 255)
SCALE = 4


def icon(size: int) -> Image.Image:
    """The square icon, `size` pixels wide."""
    big = size * SCALE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big // 5, fill=BACKGROUND)
    margin = big * 0.16
    draw.ellipse(
        (margin, margin, big - margin, big - margin), outline=RING, width=int(big * 0.06)
    )
    # Five bars, tallest in the middle: a voice.
    heights = (0.16, 0.30, 0.42, 0.30, 0.16)
    bar = big * 0.055
    gap = big * 0.035
    total = len(heights) * bar + (len(heights) - 1) * gap
    x = (big - total) / 2
    for height in heights:
        h = big * height
        top = (big - h) / 2
        draw.rounded_rectangle((x, top, x + bar, top + h), radius=bar / 2, fill=BARS)
        x += bar + gap
    return image.resize((size, size), Image.Resampling.LANCZOS)


def logo(height: int, color: tuple[int, int, int, int] = TEXT) -> Image.Image:
    """The icon and the name on a transparent background, `height` pixels high."""
    font = ImageFont.truetype(str(FONT), int(height * 0.62))
    text = "Jarvis"
    left, top, right, bottom = font.getbbox(text)
    pad = height // 8
    width = height + pad * 2 + (right - left) + pad
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    image.alpha_composite(icon(height), (0, 0))
    draw = ImageDraw.Draw(image)
    y = (height - (bottom - top)) / 2 - top
    draw.text((height + pad * 2 - left, y), text, font=font, fill=color)
    return image


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, image in (
        ("icon.png", icon(256)),
        ("icon@2x.png", icon(512)),
        ("logo.png", logo(128)),
        ("logo@2x.png", logo(256)),
        ("dark_logo.png", logo(128, DARK_TEXT)),
        ("dark_logo@2x.png", logo(256, DARK_TEXT)),
    ):
        # optimize + no metadata: the same input gives the same bytes.
        image.save(OUT / name, optimize=True)
        print(f"{OUT / name}: {image.width}x{image.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
