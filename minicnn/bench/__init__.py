"""``minicnn bench``: how fast minicnn explains, next to PyTorch doing the same work.

What is timed, at batch 1 unless said otherwise:

- VGG-16 at 224x224 with random weights (``zoo.build_architecture("vgg16")``,
  no download): forward, Grad-CAM at features.29, guided backprop to the
  input, Guided Grad-CAM;
- each shipped CIFAR-10 model (``minicnn.load``): the same four, an
  occlusion map (the explain defaults: 8x8 patch, stride 2); the forward
  pass of a batch of 64 and of 256 images (``batch64``, ``batch256``:
  logits only, ``keep=False``, as PyTorch under ``no_grad``); a forward and
  backward pass to the input of a batch of 64 (``backward64``: every
  activation kept, the gradient of the sum of each image's target score,
  the step Integrated Gradients and SmoothGrad repeat); Score-CAM at the
  default layer (``scorecam``, ``explain.scorecam``: one masked copy of the
  image per map of that layer, each map upsampled and scaled to [0, 1],
  through the network 2^18 input elements at a time, the weights the
  softmax scores of the class); and, when ``--data`` names the CIFAR-10 JPEG test set
  (a zip or folder, see ``minicnn.inputs.datasets``), ``minicnn evaluate`` on it
  end to end (``evaluate``: reading, JPEG decoding, preprocessing, 200
  images per pass) against a PyTorch loop over the same images, decoded
  beforehand, preprocessed and classified 200 at a time;
- the shipped ImageNet model ``mobilenet_v2`` at 224x224 (depthwise
  convolutions, ReLU6, inverted residuals): the first four.

When PyTorch is importable, the same operations run in PyTorch in the same
process, on a twin of the model built layer by layer from ``model.spec()``
(torchvision's names, so "features.29" is the same layer) with the *same*
weights copied in: Grad-CAM keeps a gradient only at the explained layer,
guided backprop uses a guided ReLU written as an autograd Function, and no
parameter needs a gradient. PyTorch gets as many threads as NumPy's BLAS
(threadpoolctl tells). Every result is checked against minicnn's (largest
difference relative to the largest value, the ``diff`` column).

Timing: one warm-up call of each side, then the repetitions alternate
minicnn, PyTorch, minicnn, ... so that a busy machine slows both alike.
Each repetition rests 0.3 s (so that the threads the other library left
spinning have gone to sleep), then times ``inner`` calls (enough for about
0.1 s; 1 for VGG-16) and reports the time per call; the table gives the
median, min and max. ``evaluate`` takes seconds a call: it gets at most 3
repetitions. ratio: the median over the repetitions of minicnn's
time / PyTorch's time in the same turn (a pair taken back to back shares
the machine's load); the JSON also has the ratio of the medians and of the
minima. The load average before and after the run is in the header.

Memory: peak resident memory (VmHWM) of a fresh process that builds the
model, resets the peak (``/proc/self/clear_refs``) and runs the operation
once; minicnn and PyTorch each in their own process, so neither's memory is
counted in the other's. ``peak`` is the whole process (libraries, weights
and all), ``+op`` what the operation added above the memory held before it.
The inputs are random (the time does not depend on the image).

OpenBLAS environment variables that pin an older processor kernel
(OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE) slow down a current NumPy. When they
are set, ``minicnn bench`` does its timing in a child process started
without them (``subprocess``: this process waits and returns the child's
exit status; nothing replaces or ends the caller) and the header says which
variables were dropped; ``--keep-env`` times in this process, with them,
and the header says they were kept.

The modules, in the order of a run: ``machine`` (what the machine is), ``cases`` (what is
timed, as minicnn calls), ``twins`` (the same in PyTorch), ``timing`` (repetitions, memory,
the run), ``report`` (targets, table, JSON); the command is ``minicnn.commands.bench``.
``minicnn bench --peers`` compares every explanation method with the peer libraries'
own calls instead: ``peers`` (the twin, the calls, the timing), ``peer_libraries``
(which are installed, what to install, stand-ins), ``peer_report`` (table, JSON).
"""
