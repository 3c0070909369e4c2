"""The house style: palette and a context that leaves matplotlib's interactive mode as Jupyter set it."""

from __future__ import annotations

import matplotlib as mpl

from meshsim.viz.style import PALETTE, ROLE_COLORS, house_style, new_figure


def test_interactive_mode_switched_on_inside_the_style_survives_it():
    """Jupyter's inline backend turns interactive mode on when the first figure is made; if that happens
    inside house_style(), later figures must still show (rc_context alone would switch it back off)."""
    was = mpl.is_interactive()
    try:
        mpl.interactive(False)
        with house_style():
            mpl.interactive(True)
        assert mpl.is_interactive()
        mpl.interactive(False)
        with house_style():
            pass
        assert not mpl.is_interactive()
    finally:
        mpl.interactive(was)


def test_new_figure_uses_the_palette_without_black():
    import matplotlib.pyplot as plt

    fig, ax = new_figure()
    lines = [ax.plot([0, 1], [i, i])[0] for i in range(3)]
    assert [ln.get_color() for ln in lines] == [c.lower() for c in PALETTE[1:4]] or \
        [ln.get_color() for ln in lines] == list(PALETTE[1:4])
    assert len(set(ROLE_COLORS.values())) == len(ROLE_COLORS)
    plt.close(fig)
