from benchmark_utils.plotting import (
    architecture_objectives,
    final_points,
    layer_columns,
    legend_labels,
    model_name,
    visible_style,
)
from benchopt import BasePlot


class Plot(BasePlot):
    """The width profile at the end of training: active neurons of each
    linear layer against the layer's index (the last is the output layer),
    one curve per solver setting (means over repetitions). On the denoising
    task, row-group sparsity with Bregman iterations should leave a profile
    narrower in the middle than at both ends, an autoencoder (Bungert,
    Roith, Tenbrinck & Burger, JMLR 2022)."""

    name = "architecture_final_widths"
    type = "scatter"
    options = {"dataset": ..., "objective": architecture_objectives}

    def plot(self, df, dataset, objective):
        final = final_points(df, dataset, objective)
        columns = layer_columns(final.reset_index(), "neurons_per")
        layers = [int(column.rsplit("_", 1)[1]) for column in columns]
        labels = legend_labels(final.index)
        return [dict(x=layers, y=[row[column] for column in columns], label=labels[solver],
                     **visible_style(self, solver))
                for solver, row in final.iterrows()]

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Width of each layer at the end of training\n{dataset}, "
                          f"{model_name(objective)}",
                    xlabel="linear layer", ylabel="active neurons (non-zero rows)",
                    scale="linear")
