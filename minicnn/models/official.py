"""The official checkpoints ``minicnn fetch`` knows: where they are, their names and hashes, their metadata."""

BASE_URL = "https://download.pytorch.org/models/"

#: Official torchvision ImageNet checkpoints: name -> (file name, arch). The
#: 8 hex digits in the file name are the start of the file's sha256.
CHECKPOINTS = {
    "vgg11": ("vgg11-8a719046.pth", "vgg11"),
    "vgg13": ("vgg13-19584684.pth", "vgg13"),
    "vgg16": ("vgg16-397923af.pth", "vgg16"),
    "vgg19": ("vgg19-dcbb9e9d.pth", "vgg19"),
    "vgg11_bn": ("vgg11_bn-6002323d.pth", "vgg11_bn"),
    "vgg13_bn": ("vgg13_bn-abd245e5.pth", "vgg13_bn"),
    "vgg16_bn": ("vgg16_bn-6c64b313.pth", "vgg16_bn"),
    "vgg19_bn": ("vgg19_bn-c79401a0.pth", "vgg19_bn"),
}

IMAGENET_META = {
    "input_size": [3, 224, 224],
    "preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                      "resize": "shorter_then_center_crop", "resize_shorter": 256, "size": [224, 224]},
    "licence": {"name": "BSD-3-Clause (torchvision)",
                "note": "weights published by torchvision (pytorch/vision, BSD-3-Clause); trained on ImageNet-1k, "
                        "whose terms of access apply to the data"},
}
