import numpy as np
from benchmark_utils.plotting import legend_labels, model_name, transformer_objectives
from benchopt import BasePlot

from solvers_common.results import final_results


class Plot(BasePlot):
    """Attention of the class token to the image patches in the last layer,
    one map per head, on the first test images at the end of training (one
    row per image: the image, then its heads; each map scaled to its maximum,
    brighter is more attention). Yu et al. (NeurIPS 2023) report that CRATE's
    heads attend to object parts without any segmentation supervision."""

    name = "attention_maps"
    type = "image"
    options = {"dataset": ..., "objective": transformer_objectives, "solver": ...}

    def plot(self, df, dataset, objective, solver):
        df = df.query("dataset_name == @dataset and objective_name == @objective "
                      "and solver_name == @solver")
        results = final_results(df.sort_values("idx_rep"))
        if results is None:
            return []
        images, attention = np.asarray(results["images"]), np.asarray(results["attention"])
        height, width = images.shape[1:3]
        rows, columns = attention.shape[2:]
        items = []
        for index, (image, maps) in enumerate(zip(images, attention), start=1):
            items.append(dict(image=image, label=f"test image {index}"))
            for head, head_map in enumerate(maps, start=1):
                scaled = head_map / max(head_map.max(), 1e-12)
                # Each patch's weight over the patch's pixels.
                upsampled = np.kron(scaled, np.ones((height // rows, width // columns)))
                items.append(dict(image=upsampled, label=f"image {index}, head {head}"))
        return items

    def get_metadata(self, df, dataset, objective, solver):
        results = final_results(df.query(
            "dataset_name == @dataset and objective_name == @objective "
            "and solver_name == @solver"))
        heads = 0 if results is None else np.asarray(results["attention"]).shape[1]
        return dict(title=f"{model_name(objective)}: class-token attention of the last "
                          f"layer's heads\n{dataset}, {legend_labels([solver])[solver]}",
                    ncols=heads + 1)
