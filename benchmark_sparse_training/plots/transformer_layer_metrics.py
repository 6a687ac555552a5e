from benchmark_utils.plotting import (
    first_and_last_points,
    layer_columns,
    legend_labels,
    model_name,
    transformer_objectives,
    visible_style,
)
from benchopt import BasePlot

METRICS = {
    "compression": "compression term R^c(Z^l | U^l)",
    "token_sparsity": "fraction of zeros of the layer's code",
    "coding_rate": "coding rate R(Z^l)",
}


class Plot(BasePlot):
    """A per-layer metric of the transformers against the layer index, at
    the end of training (filled markers) beside the same networks at their
    random initialization (the first evaluation, before any step; crosses),
    means over repetitions. Yu et al. (NeurIPS 2023, their measurements of
    CRATE across layers) expect, after training, the compression term to
    decrease and the sparsity to increase from layer to layer, unlike at
    initialization. ``compression`` exists for CRATE models only."""

    name = "transformer_layer_metrics"
    type = "scatter"
    options = {"dataset": ..., "solver": ..., "metric": list(METRICS)}

    def plot(self, df, dataset, solver, metric):
        df = df.query("dataset_name == @dataset and solver_name == @solver")
        curves = []
        for objective in transformer_objectives(df):
            runs = df[df["objective_name"] == objective]
            columns = [column for column in layer_columns(runs, metric)
                       if runs[column].notna().any()]
            if not columns:  # ViT has no compression term
                continue
            initial, final = first_and_last_points(runs)
            layers = list(range(1, len(columns) + 1))
            label = model_name(objective)
            style = visible_style(self, label)
            curves.append(dict(x=layers, y=[final[column] for column in columns],
                               label=f"{label}, trained", **style))
            # Same color, a marker none of the trained curves uses.
            curves.append(dict(x=layers, y=[initial[column] for column in columns],
                               label=f"{label}, initialization",
                               **{**style, "marker": "x"}))
        return curves

    def get_metadata(self, df, dataset, solver, metric):
        return dict(title=f"{METRICS[metric]} by layer, trained and at initialization\n"
                          f"{dataset}, {legend_labels([solver])[solver]}",
                    xlabel="layer", ylabel=METRICS[metric], scale="linear")
