"""Depthwise convolution, fast tier: kh*kw shifted multiply-adds per channel over one padded input.

Depthwise convolution (groups = C, one kh x kw filter per channel; ``grouped.py`` has the
equations and the reference tiers) does kh*kw multiply-adds per output element and reads
each input element kh*kw times from the cache: it is bound by memory, not by arithmetic,
and the fast way is the plain one. With xp the zero-padded input (N, C, Hp, Wp):

    out[n, c, i, j] = b[c] + sum_{u,v} w[c, 0, u, v] * xp[n, c, i*sh + u*dh, j*sw + v*dw]

**Phases.** At stride 1, tap (u, v) reads the shifted view xp[n, c, u*dh + i, v*dw + j].
At stride s the padded input is cut once into its sh*sw phases (the padding and the cut are
one copy of x):

    P[a, b][n, c, r, q] = xp[n, c, r*sh + a, q*sw + b]                       (N, C, Hq + 1, Wq)

and tap (u, v) reads phase (a, b) = (u*dh mod sh, v*dw mod sw) shifted by
(r_u, q_v) = (u*dh // sh, v*dw // sw): out[n, c, i, j] += w[c, 0, u, v] * P[a, b][n, c, i + r_u, j + q_v],
a stride-1 view again. Hq = Ho + max r_u and Wq = Wo + max q_v rows and columns are enough.

**Wide rows.** Each channel of a phase is read as one flat row of (Hq + 1)*Wq floats: the
shift (r, q) is the flat slice starting at r*Wq + q, Ho*Wq floats long. Read that way the
output is "wide", Ho rows of Wq columns of which the first Wo are out's (the other Wq - Wo
read the start of the next row; they are dropped, and the extra zero row keeps the last
slice inside the array). So each tap is one multiply and one add along runs of Ho*Wq floats:

    acc[c, m] += w[c, 0, u, v] * P[a, b]flat[n, c, r_u*Wq + q_v + m]           m < Ho*Wq

for a block of channels whose accumulator stays in cache while its kh*kw taps are summed
(``BLOCK_FLOATS``); blocks of channels run on the cores (``minicnn.parallel``).

**Layout.** Channels first, NumPy's inner loop runs along a wide row, Ho*Wq floats: right for
the early layers (112x112 with 32 channels). On the late, small maps with many channels
(28x28 and smaller, 144-960 channels) such rows are short, so there (Ho*Wq < ``LAST_BELOW`` * C)
the padded input is laid out channels last, xp (N, ., ., C), and the forward is one einsum
over the read-only view of all its windows, T[n, i, j, u, v, c] = xp[n, i*sh + u*dh, j*sw + v*dw, c],
with its inner loop along the channels and no product arrays (at any stride: no phases);
the backward's scatter-adds run on channels-last phases. x and out are transposed on the way
in and out, in the copies that are made anyway.

**Backward**, the adjoint of the same views, with dout widened to Wq columns by zeros
(dwide; its zero columns add nothing where the wide rows wrap):

    dP[a, b]flat[n, c, r_u*Wq + q_v + m] += w[c, 0, u, v] * dwide[n, c, m]     (the scatter-add)
    dx[n, c, y, z] = dP[a, b][n, c, r, q]  where y + ph = r*sh + a, z + pw = q*sw + b
    dw[c, 0, u, v] = sum_{n, m} dwide[n, c, m] * P[a, b]flat[n, c, r_u*Wq + q_v + m]   (a dot per channel and tap)
    db[c]          = sum_{n, i, j} dout[n, c, i, j]

Each position of xp lies in exactly one phase, so dx is read back from the phases, not
added. A depth multiplier m = F/C > 1 repeats each input channel m times first (forward)
and adds the m gradients back onto it (backward). Shapes: x (N, C, H, W), w (F, 1, kh, kw),
b (F,), out and dout (N, F, Ho, Wo). The arrays are computed in ``np.result_type(x, w)``:
float32 in, float32 out.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from ..windows import output_hw, pair, scratch

#: Floats of one block's accumulator (256 KiB in float32): with the product's scratch, and the
#: rows it reads, it stays in the core's cache while the kh*kw taps are added into it.
BLOCK_FLOATS = 2 ** 16
#: Channels last where a wide row is shorter than this many times the channel count (``Plan``).
LAST_BELOW = 6.0
#: Output floats below which a layer runs in the calling thread (too little work to share).
SPLIT_FLOATS = 2 ** 16


class Plan:
    """Where each tap reads: the phases, their size (Hq + 1, Wq), each tap's (phase, flat offset, u, v), the layout.

    ``last``: the padded input and the phases are laid out channels last (module docstring,
    "Layout"), where Ho*Wq < LAST_BELOW * C; the loops over a block of channels read them
    through ``rows``, ``weight`` and ``narrow`` in either layout, the channels-last forward
    through ``windows``.
    """

    def __init__(self, in_hw, kernel, stride, padding, dilation, channels):
        (self.h, self.w), (kh, kw) = in_hw, pair(kernel)
        self.stride, self.padding = pair(stride), pair(padding)
        (sh, sw), (dh, dw) = self.stride, pair(dilation)
        self.ho, self.wo = output_hw(self.h, self.w, (kh, kw), stride, padding, dilation)
        self.hq = self.ho + (kh - 1) * dh // sh
        self.wq = self.wo + (kw - 1) * dw // sw
        self.length = self.ho * self.wq                          # L: floats of one wide output channel
        self.taps = [(((u * dh) % sh, (v * dw) % sw), (u * dh // sh) * self.wq + v * dw // sw, u, v)
                     for u in range(kh) for v in range(kw)]
        self.last = self.length < LAST_BELOW * channels          # the layout: channels last on small maps
        self.kernel = (kh, kw)

    def padded(self, x):
        """x zero-padded to sh*(Hq + 1) rows and sw*Wq columns, a scratch array: (N, C, ., .), or (N, ., ., C)
        channels last. x's rows and columns that no window reads are left out; one copy of x."""
        (sh, sw), (ph, pw), (hq, wq) = self.stride, self.padding, (self.hq + 1, self.wq)
        n, c = x.shape[:2]
        rows, cols = max(0, min(self.h, sh * hq - ph)), max(0, min(self.w, sw * wq - pw))
        shape = (n, sh * hq, sw * wq, c) if self.last else (n, c, sh * hq, sw * wq)
        xp = scratch("depthwise padded", shape, x.dtype)
        rc = xp if self.last else xp.transpose(0, 2, 3, 1)       # (N, rows, columns, C) either way
        rc[:, :ph], rc[:, ph + rows:], rc[:, :, :pw], rc[:, :, pw + cols:] = 0, 0, 0, 0   # the padding
        rc[:, ph:ph + rows, pw:pw + cols] = x[:, :, :rows, :cols].transpose(0, 2, 3, 1)
        return xp

    def phase_arrays(self, x):
        """Q[a, b] = P[a, b] flat: x zero-padded (``padded``) and cut into its phases, a scratch array.

        Q is (sh, sw, N, C, (Hq + 1)*Wq), or (sh, sw, N, (Hq + 1)*Wq, C) channels last. At
        stride 1 it is the padded input itself, at stride s one more copy (a transpose of
        its (r, a) and (q, b) axes).
        """
        (sh, sw), (hq, wq) = self.stride, (self.hq + 1, self.wq)
        n, c = x.shape[:2]
        xp = self.padded(x)
        if self.last:
            split, order = (n, hq, sh, wq, sw, c), (2, 4, 0, 1, 3, 5)
        else:
            split, order = (n, c, hq, sh, wq, sw), (3, 5, 0, 1, 2, 4)
        if (sh, sw) == (1, 1):
            q = xp.reshape(split).transpose(order)                 # no copy: the phase is xp itself
        else:
            q = scratch("depthwise phases", [split[i] for i in order], x.dtype)
            q[...] = xp.reshape(split).transpose(order)
        return q.reshape(sh, sw, n, *((hq * wq, c) if self.last else (c, hq * wq)))

    def windows(self, xp_last, dilation):
        """Channels last: T[n, i, j, u, v, c] = xp[n, i*sh + u*dh, j*sw + v*dw, c], every window of the
        padded input (N, ., ., C) as a read-only view, (N, Ho, Wo, kh, kw, C), no copy."""
        (sh, sw), (dh, dw) = self.stride, pair(dilation)
        s_n, s_h, s_w, s_c = xp_last.strides
        return as_strided(xp_last, (xp_last.shape[0], self.ho, self.wo, *self.kernel, xp_last.shape[3]),
                          (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c), writeable=False)

    def input_grad(self, dq):
        """dx (N, C, H, W) from dQ (laid out as ``phase_arrays``' Q): the phases put back, the padding cut off."""
        (sh, sw), (ph, pw), (hq, wq) = self.stride, self.padding, (self.hq + 1, self.wq)
        n, c = dq.shape[2], dq.shape[4 if self.last else 3]
        if self.last:
            dxp = dq.reshape(sh, sw, n, hq, wq, c).transpose(2, 5, 3, 0, 4, 1)
        else:
            dxp = dq.reshape(sh, sw, n, c, hq, wq).transpose(2, 3, 4, 0, 5, 1)
        dxp = dxp.reshape(n, c, sh * hq, sw * wq)                  # a copy when strided or channels last
        rows, cols = max(0, min(self.h, sh * hq - ph)), max(0, min(self.w, sw * wq - pw))
        dx = np.empty((n, c, self.h, self.w), dq.dtype) if (rows, cols) == (self.h, self.w) else \
            np.zeros((n, c, self.h, self.w), dq.dtype)             # rows and columns no window reads: zero
        dx[:, :, :rows, :cols] = dxp[:, :, ph:ph + rows, pw:pw + cols]
        return dx

    def rows(self, q, phase, img, cs, offset):
        """The wide rows of tap (phase, offset) for image img and channels cs: (Cs, L), or (L, Cs) channels last."""
        span = slice(offset, offset + self.length)
        return q[phase][img, span, cs] if self.last else q[phase][img, cs, span]

    def block(self, channels, length=None):
        """The shape of Cs channels' wide rows: (Cs, L), or (L, Cs) channels last (L = (Hq + 1)*Wq for a phase)."""
        length = self.length if length is None else length
        return (length, channels) if self.last else (channels, length)

    def narrow(self, wide, channels):
        """The block's output (Cs, Ho, Wo), a view of its wide rows without the columns Wo..Wq-1."""
        if self.last:
            return wide.reshape(self.ho, self.wq, channels)[:, :self.wo].transpose(2, 0, 1)
        return wide.reshape(channels, self.ho, self.wq)[:, :, :self.wo]

    def taps_weights(self, w):
        """w (F, 1, kh, kw) as the taps read it: (F, kh, kw, 1), or (kh, kw, F) channels last (see ``weight``)."""
        return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)) if self.last else w[:, 0, :, :, None]

    def weight(self, wt, cs, u, v):
        """Tap (u, v)'s weights for channels cs, shaped to scale (Cs, L) or (L, Cs) rows."""
        return wt[u, v, cs] if self.last else wt[cs, u, v]


def _thread_slices(plan: Plan, n: int, c: int) -> list[slice]:
    """The channels cut into one slice per thread when the layer is large enough, else one slice."""
    return parallel.near_equal(c, parallel.threads() if n * c * plan.length >= SPLIT_FLOATS else 1)


def _blocks(plan: Plan, cs: slice):
    """The channel slice cs in blocks whose wide output fits ``BLOCK_FLOATS`` (channels last: one block)."""
    size = cs.stop - cs.start if plan.last else max(1, BLOCK_FLOATS // plan.length)
    return [slice(c0, min(cs.stop, c0 + size)) for c0 in range(cs.start, cs.stop, size)]


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """out[n, f, i, j] = b[f] + sum_{u,v} w[f, 0, u, v] * xp[n, f // m, i*sh + u*dh, j*sw + v*dw].

    x (N, C, H, W), w (m*C, 1, kh, kw), b (m*C,) or None -> out (N, m*C, Ho, Wo):
    kh*kw scaled adds of shifted wide rows per block of channels (module docstring).
    """
    f, _, kh, kw = w.shape
    if f != x.shape[1]:
        x = np.repeat(x, f // x.shape[1], axis=1)              # channel f holds input channel f // m
    n, c, h, wd = x.shape
    plan = Plan((h, wd), (kh, kw), stride, padding, dilation, c)
    dtype = np.result_type(x, w)
    x, wt = x.astype(dtype, copy=False), plan.taps_weights(w.astype(dtype, copy=False))
    out = np.empty((n, c, plan.ho, plan.wo), dtype)
    if plan.last:                                              # one einsum over the windows: no product arrays
        windows = plan.windows(plan.padded(x), dilation)

        def channels(cs: slice):
            for img in range(n):
                total = np.einsum("ijuvc,uvc->cij", windows[img, ..., cs], wt[..., cs])
                if b is None:
                    out[img, cs] = total
                else:
                    np.add(total, b[cs, None, None], out=out[img, cs])

        parallel.run(channels, _thread_slices(plan, n, c))
        return out
    q = plan.phase_arrays(x)

    def channels(cs: slice):                                   # kh*kw multiply-adds along wide rows
        for block in _blocks(plan, cs):
            k = block.stop - block.start
            a, t = scratch("depthwise sum", plan.block(k), dtype), scratch("depthwise product", plan.block(k), dtype)
            for img in range(n):
                for tap, (phase, offset, u, v) in enumerate(plan.taps):
                    rows, weight = plan.rows(q, phase, img, block, offset), plan.weight(wt, block, u, v)
                    if tap == 0:
                        np.multiply(rows, weight, out=a)
                    else:
                        np.multiply(rows, weight, out=t)
                        a += t
                if b is None:
                    out[img, block] = plan.narrow(a, k)
                else:
                    np.add(plan.narrow(a, k), b[block, None, None], out=out[img, block])

    parallel.run(channels, _thread_slices(plan, n, c))
    return out


def depthwise_conv2d_backward(dout, x, w, stride=1, padding=0, dilation=1, param_grads=True):
    """dx by scatter-adds of dout onto the shifted views, dw by one dot product per channel and tap.

    dout (N, m*C, Ho, Wo), x (N, C, H, W), w (m*C, 1, kh, kw) -> dx (N, C, H, W),
    dw (m*C, 1, kh, kw), db (m*C,); dw and db None unless ``param_grads``. For m > 1 the m
    output channels of one input channel add their gradients back onto it.
    """
    f, _, kh, kw = w.shape
    n, c_in, h, wd = x.shape
    plan = Plan((h, wd), (kh, kw), stride, padding, dilation, f)
    dtype = np.result_type(dout, w)
    xs = np.repeat(x, f // c_in, axis=1) if f != c_in else x
    q = plan.phase_arrays(xs.astype(dtype, copy=False)) if param_grads else None
    wt = plan.taps_weights(w.astype(dtype, copy=False))
    dq = scratch("depthwise dq", (*plan.stride, n, *plan.block(f, (plan.hq + 1) * plan.wq)), dtype)
    dq[...] = 0                                                # dQ: the phases' gradient, summed into
    dw = np.zeros((f, kh, kw), dtype) if param_grads else None
    dots = "mc,mc->c" if plan.last else "cm,cm->c"

    def channels(cs: slice):
        for block in _blocks(plan, cs):
            k = block.stop - block.start
            g, t = scratch("depthwise dwide", plan.block(k), dtype), scratch("depthwise product", plan.block(k), dtype)
            for img in range(n):
                g[...] = 0
                plan.narrow(g, k)[...] = dout[img, block]
                for phase, offset, u, v in plan.taps:
                    target = plan.rows(dq, phase, img, block, offset)
                    np.multiply(g, plan.weight(wt, block, u, v), out=t)
                    target += t
                    if param_grads:
                        dw[block, u, v] += np.einsum(dots, g, plan.rows(q, phase, img, block, offset))

    parallel.run(channels, _thread_slices(plan, n, f))
    dx = plan.input_grad(dq)
    if f != c_in:
        dx = dx.reshape(n, c_in, f // c_in, h, wd).sum(axis=2)
    if not param_grads:
        return dx, None, None
    return dx, dw[:, None], dout.sum(axis=(0, 2, 3))
