from benchmark_utils.plotting import (
    legend_labels,
    model_name,
    transformer_objectives,
    visible_style,
)
from benchopt import BasePlot


class Plot(BasePlot):
    """Test accuracy along training against training time (medians over
    repetitions) of every transformer trained by one solver on one dataset,
    on one figure, with their parameter counts in the legend: CRATE reaches
    ViT's accuracy with about a quarter of its parameters per layer (Yu et
    al., NeurIPS 2023)."""

    name = "transformer_accuracy_versus_time"
    type = "scatter"
    options = {"dataset": ..., "solver": ...}

    def plot(self, df, dataset, solver):
        df = df.query("dataset_name == @dataset and solver_name == @solver")
        curves = []
        for objective in transformer_objectives(df):
            runs = df[df["objective_name"] == objective]
            per_evaluation = runs.groupby("stop_val")
            label = model_name(objective)
            n_params = int(runs["objective_n_params"].iloc[0])
            curves.append(dict(
                x=per_evaluation["time"].median().tolist(),
                y=per_evaluation["objective_test_acc"].median().tolist(),
                label=f"{label} ({n_params:,} parameters)", **visible_style(self, label)))
        return curves

    def get_metadata(self, df, dataset, solver):
        solver_label = legend_labels([solver])[solver]
        return dict(title=f"Transformers: test accuracy along training\n{dataset}, {solver_label}",
                    xlabel="training time (s)", ylabel="test accuracy", scale="linear")
