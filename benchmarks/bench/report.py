"""What compare.py shows and writes: the progress line, the text and Markdown tables, the summary, the result files
(<tag>.json, .csv, .md) and the speedup plot (<tag>.png, when matplotlib is installed)."""
import csv
import json
import math
import sys
from pathlib import Path

from . import env, testing
from .suite import PASSES, failed, variant_str

TABLE_COLS = ("case", "dtype", "layout", "pass", "ours ms", "cuDNN ms", "speedup",
              "ours TFLOP/s", "cuDNN TFLOP/s", "ours GB/s", "rel err", "check")
NUMERIC_COLS = range(4, 11)
MODES = list(testing.DTYPES)


class Progress:
    """tqdm if installed, else a one-line counter on stderr."""

    def __init__(self, total):
        self.total, self.n = total, 0
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=sys.stderr, dynamic_ncols=True, leave=False)
        except ImportError:
            self.bar = None

    def start(self, desc):
        if self.bar is not None:
            self.bar.set_description_str(desc)
        else:
            sys.stderr.write(f"\r[{self.n + 1:>4}/{self.total}] {desc}".ljust(72))
            sys.stderr.flush()

    def done(self):
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)

    def write(self, msg):
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            sys.stderr.write("\r" + " " * 72 + "\r" + msg + "\n")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


def fmt(v, spec, suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


def table_cells(r, check_width=None):
    status = r["status"]
    if check_width and len(status) > check_width:
        status = status[:check_width - 3] + "..."
    return [r["case"], r["dtype"], r["layout"], r["pass"],
            fmt(r["ours_ms"], ".3f"), fmt(r["cudnn_ms"], ".3f"), fmt(r["speedup"], ".2f", "x"),
            fmt(r["ours_tflops"], ".2f"), fmt(r["cudnn_tflops"], ".2f"), fmt(r["ours_gbs"], ".0f"),
            fmt(r["rel_err"], ".1e"), status]


def text_table(rows):
    cells = [list(TABLE_COLS)] + [table_cells(r, check_width=40) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_COLS))]
    lines = ["  ".join(c[i].rjust(widths[i]) if i in NUMERIC_COLS else c[i].ljust(widths[i])
                       for i in range(len(c))).rstrip() for c in cells]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])


def markdown_table(rows):
    cols = list(TABLE_COLS) + ["cuDNN sel", "cuDNN rel err"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = table_cells(r) + [r["cudnn_setting"] or "-", fmt(r["cudnn_rel_err"], ".1e")]
        cells = [c.replace("|", "\\|").replace("\n", " ") for c in cells]
        if r["status"] == "FAIL":
            cells[-3] = "**FAIL**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summary_lines(rows):
    by_mode = {}
    for r in rows:
        if r["speedup"]:
            by_mode.setdefault((r["dtype"], r["pass"]), []).append(r["speedup"])
    parts = [f"{d}/{'fwd' if p == 'forward' else 'bwd'} {geomean(v):.2f}x (n={len(v)})"
             for (d, p), v in sorted(by_mode.items(), key=lambda kv: (MODES.index(kv[0][0]), PASSES.index(kv[0][1])))]
    out = ["geomean speedup (cuDNN ms / ours ms, >1 = ours faster): " + (" | ".join(parts) or "none")]
    n = dict.fromkeys(("PASS", "FAIL", "n/a", "error", "unchecked"), 0)
    for r in rows:
        n[r["status"].split(":")[0]] += 1
    out.append(f"checks: {n['PASS']} passed, {n['FAIL']} FAILED, {n['n/a']} n/a, "
               f"{n['error']} errors, {n['unchecked']} unchecked; {len(rows)} rows")
    bad = [f"{r['case']}/{r['dtype']}/{r['layout']}/{r['pass']}" for r in rows if failed(r)]
    if bad:
        out.append("FAILED/ERROR: " + ", ".join(bad[:12]) + (f", ... (+{len(bad) - 12})" if len(bad) > 12 else ""))
    cudnn_errors = sum(1 for r in rows if r["cudnn_error"])
    if cudnn_errors:
        out.append(f"cuDNN errors in {cudnn_errors} rows (see JSON 'cudnn_error')")
    return out


def header_line(meta):
    variant = meta["settings"].get("variant")
    swept = f"family {meta['settings']['family']} swept" if variant is None else f"variant {variant_str(variant)}"
    timing = meta["settings"].get("timing", "events")
    return f"{env.describe(meta)} | {swept} | no bias | timing: {timing}"


def mode_name(r):
    return f"{r['dtype']} {r['layout']} {'fwd' if r['pass'] == 'forward' else 'bwd'}"


def plot_speedup(rows, meta, path):
    """A heat map of the speedup (cuDNN ms / ours ms) per case (rows) and mode: dtype x layout x pass (columns).
    Returns the path, or None (with a printed note) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
    except ImportError:
        print("note: matplotlib is not installed: no speedup plot (pip install matplotlib, then --merge)")
        return None
    cases = list(dict.fromkeys(r["case"] for r in rows))
    modes = list(dict.fromkeys(mode_name(r) for r in rows))
    grid = [[math.nan] * len(modes) for _ in cases]
    for r in rows:
        if r["speedup"]:
            grid[cases.index(r["case"])][modes.index(mode_name(r))] = r["speedup"]
    values = [v for line in grid for v in line if not math.isnan(v)] or [1.0]
    span = max(max(values), 1 / min(values), 2.0)  # symmetric around 1x on a log scale

    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(modes), 1.4 + 0.4 * len(cases)))
    image = ax.imshow(grid, cmap="RdYlGn", norm=LogNorm(vmin=1 / span, vmax=span), aspect="auto")
    for i, line in enumerate(grid):
        for j, v in enumerate(line):
            ax.text(j, i, "-" if math.isnan(v) else f"{v:.2g}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(modes)), modes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(cases)), cases, fontsize=8)
    ax.set_title(f"speedup = cuDNN ms / ours ms (>1: ours faster)\n{meta['gpu']}, torch {meta['torch']}, "
                 f"commit {str(meta['git_commit'])[:12]}", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_json(path, meta, rows):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=str)
    return path


def write_results(out_dir, tag, meta, rows, plot=True):
    """<out_dir>/<tag>.json, .csv, .md and (with `plot`, if matplotlib is installed) .png; returns their paths."""
    out_dir = Path(out_dir)
    paths = [write_json(out_dir / f"{tag}.json", meta, rows), out_dir / f"{tag}.csv", out_dir / f"{tag}.md"]
    png = plot_speedup(rows, meta, out_dir / f"{tag}.png") if plot else None
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(paths[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    with open(paths[2], "w") as f:
        f.write(f"# conv2d_ext vs cuDNN ({tag})\n\n{header_line(meta)}\n\n")
        if png:
            f.write(f"![speedup per case and mode]({tag}.png)\n\n")
        f.write(markdown_table(rows) + "\n\n")
        f.write("\n".join(f"- {s}" for s in summary_lines(rows)) + "\n")
    return paths + ([png] if png else [])


def print_report(rows, paths):
    print(text_table(rows))
    for line in summary_lines(rows):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths), flush=True)
