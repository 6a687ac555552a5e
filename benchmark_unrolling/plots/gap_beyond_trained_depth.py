import math

from benchmark_utils.plotting import final_points, indexed_columns, short_labels
from benchopt import BasePlot

# Dashes of the line at the trained depth: segments of a trace broken by NaN
# (benchopt's scatter plots draw solid lines only).
N_DASHES = 12


class Plot(BasePlot):
    """Test gap F(z_l) - F(z*) against the depth l, from 0 to the trained
    depth L (``gap_layer_<l>``) and past it to L + k (``gap_extra_layers_<k>``,
    the network continued as it says: ISTA/FISTA iterate, tied networks repeat
    their layer, untied ones their last layer), at the end of training; the
    dashed vertical line marks L. Iteration overfitting (Ramzi, Ablin, Peyré
    & Moreau 2023) shows as a curve that stops going down, or goes up, right
    of the line."""

    name = "gap_beyond_trained_depth"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        final = final_points(df, dataset, objective)
        labels = short_labels(final.index)
        layers = indexed_columns(final, "gap_layer_")
        extra = [(k, column) for k, column in indexed_columns(final, "gap_extra_layers_")
                 if k > 0]
        depth = max(layer for layer, _ in layers)
        curves = []
        for solver, row in final.iterrows():
            points = [(layer, row[column]) for layer, column in layers]
            points += [(depth + k, row[column]) for k, column in extra]
            points = [(x, y) for x, y in points if math.isfinite(y)]
            curves.append(dict(x=[x for x, _ in points], y=[y for _, y in points],
                               label=labels[solver], **self.get_style(solver)))
        values = [y for curve in curves for y in curve["y"] if y > 0]
        if values:
            curves.append(dict(label=f"trained depth L = {depth:g}", color=(0, 0, 0, 1),
                               marker="", **trained_depth_line(depth, min(values),
                                                                max(values))))
        return curves

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Test gap beyond the trained depth\n{dataset}",
                    xlabel="depth l (layers run)", ylabel="mean F(z_l) - F(z*)",
                    scale="semilog-y")


def trained_depth_line(depth, low, high):
    """x and y of a dashed vertical line at ``depth`` from ``low`` to
    ``high`` (geometric steps, for a log y axis)."""
    edges = [low * (high / low) ** (i / (2 * N_DASHES - 1)) for i in range(2 * N_DASHES)]
    y = []
    for start, end in zip(edges[::2], edges[1::2]):
        y += [start, end, math.nan]
    return dict(x=[depth] * len(y), y=y)
