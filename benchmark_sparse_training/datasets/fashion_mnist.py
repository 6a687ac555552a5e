from benchmark_utils.image_dataset import ImageDataset


class Dataset(ImageDataset):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60,000 training and
    10,000 test gray images of clothes, 28 x 28 pixels, through torchvision."""

    name = "fashion_mnist"
    source = "fashion_mnist"
    requirements = ["pip::torchvision", "pip::numpy", "pip::scikit-learn", "pip::torch"]
