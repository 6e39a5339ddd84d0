"""Mutants of depthwise convolution's fast tier (``minicnn/layers/depthwise.py``) and the inverted
residual's backward: offsets and sizes of the phases, the padding and scratch arrays left dirty,
the wide rows cut at the wrong columns, the per-phase einsum and the adjoint's sums.

One realistic mistake each. tests/engine/test_fast_paths.py (the fast tier against the einsum
tier and the loops, both layouts, blocks of one channel), tests/engine/test_layers.py (finite
differences) and tests/engine/test_layers_mobilenet.py (known answers, the block) kill them.
"""

from run_mutations import Mutant

TESTS = ("tests/engine/test_fast_paths.py", "tests/engine/test_layers.py", "tests/engine/test_layers_mobilenet.py")
PATH = "minicnn/layers/depthwise.py"


def m(name, old, new, what, path=PATH):
    return Mutant(name, path, old, new, what, tests=TESTS)


MUTANTS = [
    m("depthwise.column-offset-without-dilation",
      "(u * dh // sh) * self.wq + v * dw // sw, u, v)", "(u * dh // sh) * self.wq + v // sw, u, v)",
      "a tap's column offset in its phase forgets the dilation"),
    m("depthwise.wq-without-dilation",
      "self.wq = self.wo + (kw - 1) * dw // sw", "self.wq = self.wo + (kw - 1) // sw",
      "the phases' width forgets the dilation"),
    m("depthwise.no-extra-row",
      "(sh, sw), (ph, pw), (hq, wq) = self.stride, self.padding, (self.hq + 1, self.wq)\n        n, c = x.shape[:2]",
      "(sh, sw), (ph, pw), (hq, wq) = self.stride, self.padding, (self.hq, self.wq)\n        n, c = x.shape[:2]",
      "the phases without the zero row that the last wide row runs into"),
    m("depthwise.padding-not-cleared",
      "        rc[:, :ph], rc[:, ph + rows:], rc[:, :, :pw], rc[:, :, pw + cols:] = 0, 0, 0, 0   # the padding\n",
      "",
      "the scratch array's padding keeps what the previous call left there"),
    m("depthwise.dq-not-cleared",
      "    dq[...] = 0                                                # dQ: the phases' gradient, summed into\n",
      "",
      "the phases' gradient summed into what the previous call left in the scratch array"),
    m("depthwise.dwide-not-cleared",
      "                g[...] = 0\n", "",
      "the wide rows of dout keep old values in their columns Wo..Wq-1"),
    m("depthwise.narrow-shifted",
      "return wide.reshape(channels, self.ho, self.wq)[:, :, :self.wo]",
      "return wide.reshape(channels, self.ho, self.wq)[:, :, self.wq - self.wo:]",
      "channels first, the output read from the last Wo columns of the wide rows"),
    m("depthwise.windows-without-dilation",
      "(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c)", "(s_n, s_h * sh, s_w * sw, s_h, s_w, s_c)",
      "channels last, the windows view steps one row and one column from tap to tap, whatever the dilation"),
    m("depthwise.windows-kernel-flipped",
      'total = np.einsum("ijuvc,uvc->cij", windows[img, ..., cs], wt[..., cs])',
      'total = np.einsum("ijuvc,uvc->cij", windows[img, ..., cs], wt[::-1, ::-1, cs])',
      "channels last, the forward convolves (kernel flipped) instead of correlating"),
    m("depthwise.last-bias-dropped",
      "                if b is None:\n                    out[img, cs] = total",
      "                if True:\n                    out[img, cs] = total",
      "channels last, the bias never added"),
    m("depthwise.first-bias-dropped",
      "                if b is None:\n                    out[img, block] = plan.narrow(a, k)",
      "                if True:\n                    out[img, block] = plan.narrow(a, k)",
      "channels first, the bias never added"),
    m("depthwise.dw-last-image-only",
      "dw[block, u, v] += np.einsum(dots", "dw[block, u, v] = np.einsum(dots",
      "dw of the last image of the batch only"),
    m("depthwise.dw-against-dq",
      "np.einsum(dots, g, plan.rows(q, phase, img, block, offset))",
      "np.einsum(dots, g, plan.rows(dq, phase, img, block, offset))",
      "dw as dout times the input's gradient instead of the input"),
    m("depthwise.input-grad-phases-swapped",
      "dxp = dq.reshape(sh, sw, n, c, hq, wq).transpose(2, 3, 4, 0, 5, 1)",
      "dxp = dq.reshape(sh, sw, n, c, hq, wq).transpose(2, 3, 4, 1, 5, 0)",
      "channels first, dx puts the row phases where the column phases go"),
    m("depthwise.phases-cut-swapped",
      "split, order = (n, c, hq, sh, wq, sw), (3, 5, 0, 1, 2, 4)",
      "split, order = (n, c, hq, sh, wq, sw), (5, 3, 0, 1, 2, 4)",
      "channels first, the row and column phases swapped when x is cut"),
    m("depthwise.multiplier-grouped-wrongly",
      "dx = dx.reshape(n, c_in, f // c_in, h, wd).sum(axis=2)",
      "dx = dx.reshape(n, f // c_in, c_in, h, wd).sum(axis=1)",
      "with a depth multiplier, dx adds output channels c, c + C, ... instead of c*m .. c*m + m - 1"),
    m("depthwise.residual-shortcut-gradient-dropped",
      "        dx += dx_shortcut\n", "",
      "the inverted residual's backward forgets the shortcut's gradient",
      path="minicnn/layers/inverted_residual.py"),
]
