import math

from benchopt.plotting.default_plots import ObjectiveCurvePlot


class Plot(ObjectiveCurvePlot):
    """benchopt's default ``objective_curve`` (each metric along training,
    medians over repetitions) without the curves that hold no finite value.

    A run that trains several models reports, for each model, the metrics it
    has: the compression term of CRATE's layers, or the kernel density of a
    convnet. In such a run, a metric column is all NaN for the models that
    lack it, and benchopt's matplotlib renderer fails on the empty curve
    (``x and y must have same first dimension``). This plot replaces the
    default one (a benchmark plot of the same name is listed after it) and
    drops those curves; every other curve is the default one."""

    name = "objective_curve"

    def plot(self, df, dataset, objective, objective_column, X_axis):
        curves = super().plot(df, dataset, objective, objective_column, X_axis)
        return [curve for curve in curves
                if any(math.isfinite(float(value)) for value in curve["y"])]
