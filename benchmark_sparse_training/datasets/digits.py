from benchmark_utils.image_dataset import ImageDataset


class Dataset(ImageDataset):
    """scikit-learn's 8 x 8 handwritten digits (1,347 training and 450 test
    images, a fixed split; by default 135 of the training images are the
    validation split, the solvers train on 1,212); ships with scikit-learn,
    so it runs offline."""

    name = "digits"
    source = "digits"
    requirements = ["pip::scikit-learn", "pip::numpy", "pip::torch", "pip::torchvision"]
