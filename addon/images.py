#!/usr/bin/env python3
"""Draws the add-on's icon.png (128x128) and logo.png (250x100), as the developer docs
recommend, offline with Pillow (`pip install pillow`): a microphone ring over three server
blades, in Home Assistant blue. Run from the repository root: python3 addon/images.py"""
from PIL import Image, ImageDraw, ImageFont

BLUE = (3, 169, 244)
DARK = (18, 32, 47)
WHITE = (255, 255, 255)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def mark(size):
    """The square mark, drawn 4x larger and scaled down for smooth edges."""
    s = size * 4
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, s - 1, s - 1], radius=s // 5, fill=DARK)
    # Three server blades, the middle one lit.
    for i, y in enumerate((0.52, 0.64, 0.76)):
        top = int(s * y)
        d.rounded_rectangle([int(s * 0.2), top, int(s * 0.8), top + int(s * 0.09)],
                            radius=s // 40, fill=BLUE if i == 1 else (60, 80, 100))
        d.ellipse([int(s * 0.68), top + int(s * 0.03), int(s * 0.71), top + int(s * 0.06)],
                  fill=WHITE)
    # A voice ring with a microphone above them.
    d.arc([int(s * 0.3), int(s * 0.08), int(s * 0.7), int(s * 0.48)], 200, 340,
          fill=BLUE, width=s // 28)
    d.rounded_rectangle([int(s * 0.44), int(s * 0.14), int(s * 0.56), int(s * 0.36)],
                        radius=s // 16, fill=WHITE)
    d.line([int(s * 0.5), int(s * 0.36), int(s * 0.5), int(s * 0.44)], fill=WHITE,
           width=s // 40)
    return img.resize((size, size), Image.LANCZOS)


def main():
    mark(128).save("addon/jarvis/icon.png", optimize=True)
    logo = Image.new("RGBA", (250, 100), (0, 0, 0, 0))
    logo.paste(mark(84), (8, 8))
    d = ImageDraw.Draw(logo)
    d.text((102, 18), "Jarvis", font=ImageFont.truetype(FONT, 38), fill=DARK)
    d.text((104, 64), "homelab by voice", font=ImageFont.truetype(FONT, 13), fill=BLUE)
    logo.save("addon/jarvis/logo.png", optimize=True)


if __name__ == "__main__":
    main()
