import textwrap

import numpy as np
from benchopt import BasePlot

from solvers_common.results import final_results


class Plot(BasePlot):
    """Restored examples: for the first test images, one row each, the clean
    image, what the solver starts from (``A^T y``: the masked or blurred,
    noisy measurement) and its restoration at the end of training, with
    each restoration's PSNR."""

    name = "restored_images"
    type = "image"
    options = {"dataset": ..., "objective": ..., "solver": ...}

    def _results(self, df, dataset, objective, solver):
        df = df.query("dataset_name == @dataset and objective_name == @objective "
                      "and solver_name == @solver")
        return final_results(df.sort_values("idx_rep"))

    def plot(self, df, dataset, objective, solver):
        results = self._results(df, dataset, objective, solver)
        if results is None:
            return []
        items = []
        for index, (clean, measured, restored) in enumerate(zip(
                *(np.asarray(results[key]) for key in ("clean", "measured", "restored"))),
                start=1):
            items.append(dict(image=clean, label=f"test image {index}"))
            items.append(dict(image=measured, label=f"A^T y, {_psnr(measured, clean):.1f} dB"))
            items.append(dict(image=restored, label=f"restored, {_psnr(restored, clean):.1f} dB"))
        return items

    def get_metadata(self, df, dataset, objective, solver):
        # The full names are long: wrapped at their commas.
        names = "\n".join(textwrap.fill(name.replace(",", ", "), 160)
                          for name in (dataset, solver))
        return dict(title=f"Restored test images\n{names}", ncols=3)


def _psnr(image, clean):
    mse = float(np.mean((np.asarray(image, dtype=float) - clean) ** 2))
    return 10 * np.log10(1 / max(mse, 1e-30))
