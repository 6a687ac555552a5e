import numpy as np
from benchmark_utils.plotting import positive_or_nan, select, solver_labels
from benchopt import BasePlot


class Plot(BasePlot):
    """The hypergradient study (objective parameter ``study_lmbd_ratio``):
    the relative error ||g_N - g*|| / ||g*|| of each method's hypergradient
    against the number N of inner iterations (log scale, median over
    repetitions), one curve per method (ITD forward and backward, truncated
    backpropagation, implicit, implicit forward); a star on each curve marks
    the first N where supp(theta_N) = supp(theta*). Expected (Bertrand et
    al. 2022): ITD flat or growing until the star, then linear; truncation
    plateaus; implicit and implicit forward drop once the support is found.
    Empty outside the study."""

    name = "hypergradient_error_versus_inner_iterations"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        df = select(df, dataset, objective)
        if "objective_hypergradient_error" not in df:
            return []
        df = df[df["objective_n_inner_iterations"].notna()]
        labels = solver_labels(df["solver_name"].unique())
        curves = []
        for solver, runs in df.groupby("solver_name"):
            grouped = runs.groupby("objective_n_inner_iterations")[
                ["objective_hypergradient_error", "objective_support_identified"]
            ].median().sort_index()
            n_iterations = grouped.index.to_numpy()
            errors = positive_or_nan(grouped["objective_hypergradient_error"])
            style = self.get_style(solver)
            curves.append(dict(x=n_iterations.tolist(), y=errors.tolist(),
                               label=labels[solver], **style))
            identified = np.flatnonzero(grouped["objective_support_identified"].to_numpy() >= 1)
            if len(identified):
                first = identified[0]
                curves.append(dict(x=[float(n_iterations[first])], y=[float(errors[first])],
                                   label=f"{labels[solver]}: support identified",
                                   **{**style, "marker": "*"}))
        return curves

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Hypergradient error versus inner iterations\n{dataset}",
                    xlabel="inner iterations N", ylabel="||g_N - g*|| / ||g*||",
                    scale="semilog-y")
