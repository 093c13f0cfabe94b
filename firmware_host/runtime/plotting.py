"""Plots of an archive: pressure, dP/dt, reserve time and alarms over time (matplotlib)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from common.errors import CabinwatchError, InputFileError
from common.outpaths import output_file
from firmware_host.runtime.archive import open_archive

#: What a missing matplotlib (the optional ``plot`` extra) tells the user.
NO_MATPLOTLIB = "plots need matplotlib, which is not installed: pip install 'cabinwatch[plot]'"


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend; ``CabinwatchError`` (one line, exit 2)
    if matplotlib, the optional ``plot`` extra, is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise CabinwatchError(NO_MATPLOTLIB) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: The formats ``plot --out`` writes, by suffix.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def plot_path(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a plot file: a suffix of ``PLOT_SUFFIXES``, not a folder, its folder
    present (at most one missing level is created); ``CabinwatchError`` otherwise."""
    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise CabinwatchError(
            f"{option}: {path}: the file name must end in {', '.join(PLOT_SUFFIXES)}"
        )
    return output_file(path, option)


def _literal(text: str) -> str:
    """``text`` shown as is in a legend (a ``$`` would start math markup)."""
    return text.replace("$", r"\$")


LEVEL_COLORS = {
    "ADVISORY": "tab:gray",
    "CAUTION": "gold",
    "WARNING": "darkorange",
    "EMERGENCY": "red",
}
MMHG_PA = 133.322
#: Reserve times beyond this (h) are not drawn: nothing is running out.
RESERVE_MAX_H = 1000.0


def plot_archive(
    archive: str | Path, out_png: str | Path, title: str | None = None, truth: dict | None = None
) -> Path:
    """Draw the archive into ``out_png``; ``truth`` optionally overlays the true pressure
    per volume as ``{volume: (t_s array, pressure_pa array)}``.

    dP/dt, leak and reserve are drawn only where the estimate was settled
    (``EstimateState.SETTLED``; an archive written before estimates had a
    state draws every row): a settling estimate is not shown as a fact."""
    plt = pyplot()
    out_png = plot_path(out_png)
    db = open_archive(archive)
    cols = {row[1] for row in db.execute("PRAGMA table_info(estimates)")}
    state = "state" if "state" in cols else "NULL"
    rows = db.execute(
        "SELECT t_s, volume, pressure_pa, dpdt_pa_s, reserve_s_linear, reserve_s_orifice, "
        f"mass_rate_kg_day, {state} FROM estimates ORDER BY t_s"
    ).fetchall()
    events = db.execute("SELECT t_s, level, transition FROM events ORDER BY t_s").fetchall()
    db.close()
    if not rows:
        raise InputFileError(str(archive), "archive holds no estimates to plot")
    t0 = rows[0][0]
    by_vol: dict[str, list] = {}
    for r in rows:
        by_vol.setdefault(r[1], []).append(r)
    hours = max(r[0] for r in rows) - t0 > 3 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")

    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    any_reserve = False
    ax_p, ax_d, ax_m, ax_r = axes
    for vol, rs in sorted(by_vol.items()):
        a = np.array(
            [
                [x if x is not None else np.nan for x in (r[0], r[2], r[3], r[4], r[5], r[6])]
                for r in rs
            ]
        )
        settling = np.array([r[7] is not None and r[7] != "SETTLED" for r in rs])
        a[settling, 2:] = np.nan
        t = (a[:, 0] - t0) / scale
        ax_p.plot(t, a[:, 1] / 1000, label=_literal(vol))
        ax_d.plot(t, a[:, 2] * 60, label=_literal(vol))
        ax_m.plot(t, a[:, 5], label=_literal(vol))
        reserve = np.fmin(a[:, 3], a[:, 4]) / 3600
        reserve[~np.isfinite(reserve) | (reserve <= 0) | (reserve > RESERVE_MAX_H)] = np.nan
        any_reserve |= bool(np.isfinite(reserve).any())
        ax_r.plot(t, reserve, label=_literal(vol))
    if truth:
        for vol, (tt, pp) in truth.items():
            ax_p.plot(
                (np.asarray(tt) - t0) / scale,
                np.asarray(pp) / 1000,
                "k:",
                lw=0.8,
                label=_literal(f"{vol} (truth)"),
            )
    ax_p.set_ylabel("pressure (kPa)")
    sec = ax_p.secondary_yaxis(
        "right", functions=(lambda k: k * 1000 / MMHG_PA, lambda m: m * MMHG_PA / 1000)
    )
    sec.set_ylabel("mmHg")
    ax_d.set_ylabel("dP/dt (Pa/min)")
    ax_d.axhline(0, color="k", lw=0.5)
    ax_m.set_ylabel("leak (kg/day)")
    ax_r.set_ylabel(f"reserve (h, < {RESERVE_MAX_H:g})")
    if any_reserve:
        ax_r.set_yscale("log")
    ax_r.set_xlabel(f"time ({unit})")
    shown = set()
    for t_s, level, transition in events:
        if transition != "RAISED" or level == "ADVISORY":
            continue
        x = (t_s - t0) / scale
        label = level if level not in shown else None
        shown.add(level)
        for ax in axes:
            ax.axvline(
                x,
                color=LEVEL_COLORS.get(level, "k"),
                lw=1.2,
                ls="--",
                label=label if ax is ax_p else None,
            )
    for ax in axes:
        ax.grid(True, alpha=0.3)
    ax_p.legend(loc="best", fontsize=8, ncol=2)
    # parse_math=False: a "$" in a title or a file name is shown, not typeset
    fig.suptitle(title or f"cabinwatch archive {Path(archive).name}", parse_math=False)
    out = Path(out_png)
    try:
        with warnings.catch_warnings():
            # a character the font lacks (in a title or a volume name) is drawn as a box
            warnings.filterwarnings("ignore", message="Glyph .* missing", category=UserWarning)
            fig.tight_layout()
            fig.savefig(out, dpi=90)
    except OSError as exc:
        raise InputFileError(str(out_png), exc.strerror or str(exc)) from None
    finally:
        plt.close(fig)
    return out
