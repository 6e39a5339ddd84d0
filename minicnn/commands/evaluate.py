"""``minicnn evaluate``: top-1 accuracy on a labelled image dataset (see ``minicnn.models.evaluate``)."""

from __future__ import annotations

from ..inputs.samples import DATA_DIR
from ..models.evaluate import check_counts, evaluate, evaluate_on
from .options import add_cluster_options, cluster_from

HELP = "top-1 accuracy on a labelled image dataset"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="shipped model name or weights file")
    p.add_argument("--data", default=None,
                   help="image folders <split>/<class>/*.jpg, a zip of them, or the CIFAR-10 python archive "
                        "(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) "
                        "(default: the 300 CIFAR-10 test images shipped in minicnn/data/cifar10)")
    p.add_argument("--split", default="test", help="which split: a folder of --data, or the archive's test or train")
    p.add_argument("--batch-size", type=int, default=200, help="images per forward pass")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images (default: all)")
    add_cluster_options(p, cache=False)


def run(args) -> int:
    """``minicnn evaluate --model NAME [--data PATH] [--split test] [--batch-size] [--limit]``.

    Without ``--data``: the 300 CIFAR-10 test images shipped in ``minicnn/data/cifar10``.
    """
    from ..inputs.datasets import open_dataset  # lazy: tarfile, zipfile slow `minicnn --help`
    from ..models.weights import load  # lazy: as above
    check_counts(args.batch_size, args.limit)           # before any loading or printing
    cluster = cluster_from(args)                        # None: the serial run
    model = load(args.model)
    dataset = open_dataset(DATA_DIR / "cifar10" if args.data is None else args.data, args.split)
    if args.data is None:
        print(f"data: the {len(dataset)} shipped CIFAR-10 {args.split} images (minicnn/data/cifar10); "
              f"--data names the full test set")
    if cluster is None:
        result = evaluate(model, dataset, args.batch_size, args.limit, progress=True)
    else:
        result = evaluate_on(cluster, args.model, dataset, args.batch_size, args.limit, progress=True, model=model)
    print(result)
    return 0
