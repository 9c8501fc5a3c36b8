"""Pages are thin: layout and calls; their logic lives in ui/."""

from pathlib import Path

PAGES = Path(__file__).resolve().parents[1] / "app_pages"


def test_every_page_has_at_most_150_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in sorted(PAGES.glob("*.py"))}
    assert sizes, "no pages found"
    assert all(n <= 150 for n in sizes.values()), sizes
