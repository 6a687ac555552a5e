from benchmark_utils.image_dataset import ImageDataset


class Dataset(ImageDataset):
    """MNIST (LeCun, Bottou, Bengio & Haffner 1998): 60,000 training and
    10,000 test gray images of 28 x 28 pixels, through torchvision."""

    name = "mnist"
    source = "mnist"
    requirements = ["pip::torchvision", "pip::numpy", "pip::scikit-learn", "pip::torch"]
