from benchmark_utils.image_dataset import ImageDataset


class Dataset(ImageDataset):
    """CIFAR-10 (Krizhevsky 2009): 50,000 training and 10,000 test color
    images of 32 x 32 pixels, through torchvision."""

    name = "cifar10"
    source = "cifar10"
    requirements = ["pip::torchvision", "pip::numpy", "pip::scikit-learn", "pip::torch"]
