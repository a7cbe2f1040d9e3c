from setuptools import find_packages, setup

_CV = ["keras-cv==0.9.*"]
_HUB = ["keras-hub==0.32.*"]
_QAT = ["tensorflow-model-optimization>=0.8.1", "tf_keras==2.21.*"]
_LITERT = ["ai-edge-litert"]
_PLOT = ["matplotlib"]
_TEST = ["pytest", "hypothesis", "h5py", "scikit-learn"]

setup(
    name="mnv3-layers",
    version="0.1.0",
    description=(
        "MobileNetV3 (Searching for MobileNetV3, ICCV 2019) as Keras 3 layers: "
        "blocks, applications, feature taps, QAT and latency tools."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Every sub-package of mnv3_layers/ that exists (layers, architecture, ...),
    # plus the repository folder applications/ (and its sub-packages) installed
    # as mnv3_layers.applications.
    packages=(
        ["mnv3_layers"]
        + ["mnv3_layers." + name for name in find_packages("mnv3_layers")]
        + ["mnv3_layers.applications"]
        + ["mnv3_layers.applications." + name for name in find_packages("applications")]
    ),
    package_dir={"mnv3_layers.applications": "applications"},
    install_requires=["tensorflow==2.21.*", "keras>=3.15", "numpy", "h5py"],
    extras_require={
        "cv": _CV,
        "hub": _HUB,
        "qat": _QAT,
        "litert": _LITERT,
        "plot": _PLOT,
        "dev": _CV + _HUB + _QAT + _LITERT + _PLOT + _TEST,
    },
    entry_points={"console_scripts": ["mnv3=mnv3_layers.cli:main"]},
    license="Apache-2.0",
)
