from benchmark_utils.plotting import (
    architecture_objectives,
    layer_columns,
    legend_labels,
    model_name,
    visible_style,
)
from benchopt import BasePlot


class Plot(BasePlot):
    """The architecture a solver finds: the active neurons (non-zero rows)
    of each linear layer against training time (medians over repetitions),
    one figure per solver. With row-group sparsity, LinBreg and AdaBreg start
    from a few neurons per layer and add them as the loss needs them; on the
    denoising task the widths that survive form an autoencoder, narrow in the
    middle (Bungert, Roith, Tenbrinck & Burger, JMLR 2022). SGD and Adam stay
    at full width; proximal SGD starts there and comes down."""

    name = "architecture_found"
    type = "scatter"
    options = {"dataset": ..., "objective": architecture_objectives, "solver": ...}

    def plot(self, df, dataset, objective, solver):
        runs = df.query("dataset_name == @dataset and objective_name == @objective "
                        "and solver_name == @solver")
        per_evaluation = runs.groupby("stop_val")
        times = per_evaluation["time"].median().tolist()
        curves = []
        for column in layer_columns(runs, "neurons_per"):
            layer = column.rsplit("_", 1)[1]
            curves.append(dict(x=times, y=per_evaluation[column].median().tolist(),
                               label=f"layer {layer}", **visible_style(self, f"layer {layer}")))
        return curves

    def get_metadata(self, df, dataset, objective, solver):
        # The solver's name with the parameters that tell it from the other
        # settings of the run (two adabreg panels differ by their lmbd).
        label = legend_labels(df["solver_name"].unique())[solver]
        return dict(title=f"Active neurons per layer along training: "
                          f"{label}\n{dataset}, {model_name(objective)}",
                    xlabel="training time (s)", ylabel="active neurons (non-zero rows)",
                    scale="linear")
