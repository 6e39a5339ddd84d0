"""Mutants of the choice between BLAS's threads and minicnn's (parallel.blas_pass, by the size
of the pass and the machine's load) and of the passes that keep nothing (a convolution with
its BatchNorm folded in and its ReLU in one pass).

tests/engine/test_batched.py proves the thread rule (which way a pass goes, and that its
backward goes the same way); tests/engine/test_fast_paths.py proves the one-pass chain equal
to the layers one after the other.
"""

from run_mutations import Mutant

BATCHED = "tests/engine/test_batched.py"
FAST = "tests/engine/test_fast_paths.py"


def m(name, path, old, new, what, *tests, equivalent=""):
    return Mutant(name, f"minicnn/{path}", old, new, what, equivalent=equivalent, tests=tests or (BATCHED, FAST))


MUTANTS = [
    # ------------------------------------------------------------ parallel.py: the thread rule
    m("batched.threshold-off-by-one", "parallel.py",
      "image_elements >= BLAS_IMAGE_ELEMENTS and", "image_elements > BLAS_IMAGE_ELEMENTS and",
      "an image of exactly BLAS_IMAGE_ELEMENTS elements goes to minicnn's threads"),
    m("batched.blas-for-chunked-batches", "parallel.py",
      "return chunks == 1 and image_elements", "return image_elements",
      "a batch of large images cut into chunks also lets BLAS thread (both kinds of threads at once)"),
    m("batched.busy-load-off-by-one", "parallel.py",
      "load_per_core() <= BUSY_LOAD_PER_CORE", "load_per_core() < BUSY_LOAD_PER_CORE",
      "a machine exactly as busy as allowed already chunks the large image"),
    m("batched.load-ignored", "parallel.py",
      " and load_per_core() <= BUSY_LOAD_PER_CORE", "",
      "a busy machine still lets BLAS's threads share each product (they wait for each other)"),
    m("batched.load-not-per-core", "parallel.py",
      "return os.getloadavg()[0] / _CORES", "return os.getloadavg()[0]",
      "the load average compared with a per-core limit without dividing by the cores"),
    m("batched.blas-pass-still-splits", "parallel.py",
      "        _STATE.inside = True\n        try:\n            yield",
      "        try:\n            yield",
      "a BLAS pass still cuts its products into blocks on minicnn's threads"),
    m("batched.blas-pass-holds-blas", "parallel.py",
      "    if blas:\n        before", "    if False:\n        before",
      "the large image's pass holds BLAS to one thread, as before the fix"),
    # ------------------------------------------------------------ model.py: the backward goes as its forward
    m("batched.backward-always-chunked", "model.py",
      "with parallel.session(self._blas):", "with parallel.session():",
      "the backward of a large image holds BLAS to one thread although its forward did not"),
    # ------------------------------------------------------------ layers: one pass for conv, BatchNorm, ReLU
    m("batched.fold-not-counted", "layers/conv.py",
      "return out, int(bn is not None) + int(relu)", "return out, int(relu)",
      "the folded BatchNorm runs again after the fused convolution"),
    m("batched.fold-without-shift", "layers/conv.py",
      "w, b = fold_into_conv(w, b, gamma, beta, mean, var, bn.eps)",
      "w = fold_into_conv(w, b, gamma, beta, mean, var, bn.eps)[0]",
      "BatchNorm folded as its scale only, without (b - mean) * scale + beta"),
    m("batched.relu-fused-after-anything", "layers/conv.py",
      "relu = bool(after) and type(after[0]) is ReLU", "relu = bool(after)",
      "whatever layer follows is taken for a ReLU and folded in"),
    m("batched.im2col-path-without-relu", "layers/conv.py",
      "    if relu:\n        np.maximum(out, 0, out=out)\n", "",
      "the strided (im2col) convolution drops the folded ReLU"),
    m("batched.side-by-side-without-relu", "layers/conv.py",
      "            np.maximum(y, 0, out=y)\n", "",
      "the stride-1 (side by side) convolution drops the folded ReLU"),
    m("batched.side-by-side-relu-before-bias", "layers/conv.py",
      "                y += b[:, None]\n", "",
      "the stride-1 convolution with a folded ReLU drops its bias (it is added only on the way out otherwise)"),
    m("batched.chain-runs-folded-layers-again", "layers/base.py",
      "i += 1 + used", "i += 1",
      "the layers folded into a convolution run again after it"),
    m("batched.chain-fuses-under-replace", "layers/base.py",
      "if run.keep or run.replace:", "if run.keep:",
      "a pass that replaces an output fuses across it (the replacement is lost)"),
    m("batched.block-without-last-relu", "layers/residual.py",
      "out = np.maximum(np.add(h, s, out=h), 0, out=h)", "out = np.add(h, s, out=h)",
      "a ResNet block that keeps nothing forgets its last ReLU"),
    m("batched.block-without-shortcut", "layers/residual.py",
      "out = np.maximum(np.add(h, s, out=h), 0, out=h)", "out = np.maximum(h, 0, out=h)",
      "a ResNet block that keeps nothing drops its shortcut"),
]
