"""The connectivity matrix as a PNG: one coloured square per pair (green connected, red
expected but failed, grey not expected and did not), names along the edges."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from podnet.debug.probe import Matrix

CELL = 28
PAD = 8
GREEN, RED, GREY, INK = (46, 160, 67), (207, 34, 46), (175, 184, 193), (36, 41, 47)


def draw(m: Matrix, path: str) -> None:
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = max((probe.textlength(s, font=font) for s in m.sources), default=0) + 2 * PAD
    top = max((probe.textlength(t, font=font) for t in m.targets), default=0) + 2 * PAD
    width = int(left + CELL * len(m.targets) + PAD)
    explained = [c for c in m.failures() if c.cause]
    legend = [f"{i}. {c.source} -> {c.target}: {c.cause} at {c.where}" for i, c in enumerate(explained, 1)]
    width = max(width, int(max((probe.textlength(t, font=font) for t in legend), default=0) + 2 * PAD))
    height = int(top + CELL * len(m.sources) + PAD + 20 + 14 * len(legend))
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    for j, t in enumerate(m.targets):  # column names, written upwards
        label = Image.new("RGB", (int(top), CELL), "white")
        ImageDraw.Draw(label).text((PAD, CELL // 3), t, fill=INK, font=font)
        img.paste(label.rotate(90, expand=True), (int(left + j * CELL), 0))
    for i, s in enumerate(m.sources):
        y = top + i * CELL
        d.text((PAD, y + CELL // 3), s, fill=INK, font=font)
        for j, t in enumerate(m.targets):
            c = m.cells[(s, t)]
            color = GREEN if c.ok else RED if c.expected else GREY
            x = left + j * CELL
            d.rectangle([x + 2, y + 2, x + CELL - 2, y + CELL - 2], fill=color)
            if c in explained:  # the cell's number in the legend below, where its cause is written
                d.text((x + 6, y + CELL // 3), str(explained.index(c) + 1), fill="white", font=font)
    failed = len(m.failures())
    base = top + CELL * len(m.sources) + PAD
    d.text((PAD, base), f"{failed} expected connections failed" if failed else "all green", fill=INK, font=font)
    for i, text in enumerate(legend):
        d.text((PAD, base + 16 + 14 * i), text, fill=INK, font=font)
    img.save(path, "PNG")
