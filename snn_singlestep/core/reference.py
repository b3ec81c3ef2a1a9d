r"""Slow, plain oracles for the S² surrogate; used only by the tests and ``docs/theory.md``.

Nothing here is on a training path. Every function is written to be *obviously* right
rather than fast: scalar :mod:`math` for the closed forms, explicit float64 numpy
arrays for the simulated neuron. Nothing here imports snnTorch, SpikingJelly or the
rest of :mod:`snn_singlestep`, so that the tests compare the package against an
independent computation.

Two groups:

* the documented closed forms of the surrogate, :func:`s2_grad_ref` and
  :func:`s2_primitive_ref` (with :math:`x = v - \theta`);
* the multi-step neuron whose reduction to one step is our derivation of the tail
  :math:`\beta/(1+x)` (``docs/theory.md``): a non-leaky integrate-and-fire (IF)
  neuron that splits the single step :math:`t \in [0, 1]` into :math:`K` sub-steps
  under a constant drive :math:`u = \theta + x`, so that its membrane at sub-step
  :math:`k` is :math:`v_k = u\,k/K`. Reading (a) averages the sigmoid surrogate
  derivative over the sub-steps (:func:`if_time_averaged_surrogate`, whose
  :math:`K \to \infty` limit is :func:`if_time_averaged_limit`); reading (b) reads
  the first-spike time (:func:`if_first_spike_time`).

==================  ==================  ==========================================
symbol              argument            meaning
==================  ==================  ==========================================
:math:`x`           ``x``               :math:`v - \theta` of the single-step unit
:math:`\alpha`      ``alpha``           slope of the sigmoid surrogate
:math:`\beta`       ``beta``            height of the logarithmic tail
:math:`\theta`      ``theta``           threshold of the simulated IF neuron
:math:`K`           ``num_substeps``    sub-steps the single step is split into
==================  ==================  ==========================================
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "sigmoid_ref",
    "sigmoid_grad_ref",
    "s2_grad_ref",
    "s2_primitive_ref",
    "if_substep_potentials",
    "if_time_averaged_surrogate",
    "if_time_averaged_limit",
    "if_rate_drive_gradient",
    "if_first_spike_time",
]


def sigmoid_ref(z: float) -> float:
    r"""The logistic function :math:`\sigma(z) = 1/(1 + e^{-z})`, without overflow.

    Examples:
        >>> sigmoid_ref(0.0)
        0.5
        >>> round(sigmoid_ref(-4.0), 6)
        0.017986
        >>> sigmoid_ref(-1000.0)
        0.0
    """
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def sigmoid_grad_ref(z: float) -> float:
    r"""The derivative :math:`\sigma'(z) = \sigma(z)\,(1 - \sigma(z)) = e^{-|z|}/(1 + e^{-|z|})^2`.

    Examples:
        >>> sigmoid_grad_ref(0.0)
        0.25
    """
    e = math.exp(-abs(z))
    return e / (1.0 + e) ** 2


def s2_grad_ref(x: float, alpha: float = 4.0, beta: float = 1.0) -> float:
    r"""The documented S² surrogate derivative, one scalar at a time.

    .. math::

        g'(x) = \begin{cases}
            \alpha\,\sigma'(\alpha x), & x < 0 \\
            \beta / (1 + x), & x \ge 0
        \end{cases}

    ``x``, ``alpha`` (> 0), ``beta`` (> 0): see the module's symbol table.

    Returns:
        :math:`g'(x)` as a Python float.

    Examples:
        >>> s2_grad_ref(0.0), s2_grad_ref(1.0), round(s2_grad_ref(-1.0), 4)
        (1.0, 0.5, 0.0707)
    """
    if x < 0:
        return alpha * sigmoid_grad_ref(alpha * x)
    return beta / (1.0 + x)


def s2_primitive_ref(x: float, alpha: float = 4.0, beta: float = 1.0) -> float:
    r"""The documented S² primitive, one scalar at a time.

    .. math::

        g(x) = \begin{cases}
            \sigma(\alpha x), & x < 0 \\
            \beta \ln(1 + x) + \tfrac12, & x \ge 0
        \end{cases}

    ``x``, ``alpha`` (> 0), ``beta`` (> 0): see the module's symbol table.

    Returns:
        :math:`g(x)` as a Python float.

    Examples:
        >>> s2_primitive_ref(0.0), round(s2_primitive_ref(math.e - 1.0), 12)
        (0.5, 1.5)
    """
    if x < 0:
        return sigmoid_ref(alpha * x)
    return beta * math.log1p(x) + 0.5


def _check_substeps(num_substeps: int) -> int:
    if isinstance(num_substeps, bool) or not isinstance(num_substeps, int) or num_substeps < 1:
        raise ValueError(f"num_substeps must be an int >= 1, got {num_substeps!r}")
    return num_substeps


def if_substep_potentials(x: float, num_substeps: int, theta: float = 1.0) -> np.ndarray:
    r"""Membrane of a non-leaky IF neuron at the end of each of :math:`K` sub-steps.

    The single time step :math:`t \in [0, 1]` is split into :math:`K` sub-steps of
    length :math:`1/K`. The neuron starts at :math:`v_0 = 0` and integrates the constant
    drive :math:`u = \theta + x` (the drive that makes the single-step membrane equal
    :math:`\theta + x`), with no leak and no reset inside the step:

    .. math::

        v_k = v_{k-1} + \frac{u}{K} = u\,\frac{k}{K}, \qquad k = 1, \dots, K,

    so that :math:`v_K = u` is the single-step membrane.

    Args:
        x: :math:`v - \theta` of the single-step unit.
        num_substeps: :math:`K \ge 1`.
        theta: threshold :math:`\theta`.

    Returns:
        float64 array ``[v_1, ..., v_K]``.

    Examples:
        >>> if_substep_potentials(1.0, 4).tolist()
        [0.5, 1.0, 1.5, 2.0]
    """
    num_substeps = _check_substeps(num_substeps)
    u = float(theta) + float(x)
    k = np.arange(1, num_substeps + 1, dtype=np.float64)
    return u * k / num_substeps


def if_time_averaged_surrogate(
    x: float, alpha: float, num_substeps: int, theta: float = 1.0, *, reset: bool = False
) -> float:
    r"""Reading (a): the sigmoid surrogate derivative averaged over the :math:`K` sub-steps.

    A multi-step SNN trained with the sigmoid surrogate sees, at sub-step :math:`k`,
    :math:`\partial s_k/\partial v_k \approx \alpha\,\sigma'(\alpha(v_k - \theta))`.
    Averaging over the sub-steps of :func:`if_substep_potentials`:

    .. math::

        G_K(x) = \frac1K \sum_{k=1}^{K} \alpha\,\sigma'\!\bigl(\alpha(v_k - \theta)\bigr)
        \;\xrightarrow[K\to\infty]{}\;
        \int_0^1 \alpha\,\sigma'\bigl(\alpha(ut - \theta)\bigr)\,dt
        = \frac{\sigma(\alpha(u - \theta)) - \sigma(-\alpha\theta)}{u}

    (the limit is :func:`if_time_averaged_limit`). This is a right-endpoint Riemann sum
    of a unimodal integrand bounded by :math:`\alpha/4`, so
    :math:`|G_K - G_\infty| \le \alpha/(2K)`.

    Args:
        x: :math:`v - \theta` of the single-step unit (any real; :math:`u \le 0` is
            allowed here, the neuron then never approaches threshold).
        alpha: slope :math:`\alpha > 0` of the sigmoid surrogate.
        num_substeps: :math:`K \ge 1`.
        theta: threshold :math:`\theta`.
        reset: if True, the simulated neuron resets by subtraction inside the step
            (:math:`v_k \leftarrow v_k - \theta` right after a sub-step with
            :math:`v_k \ge \theta`; the surrogate is evaluated before the reset). The
            default, False, is the reading of ``docs/theory.md``: the single-step neuron
            has no reset, so neither has its multi-step counterpart. With a reset the
            limit is no longer :math:`1/u` (see the doc).

    Returns:
        :math:`G_K(x)` as a Python float.

    Examples:
        >>> round(if_time_averaged_surrogate(1.0, 4.0, 100_000), 4)
        0.482
        >>> round(if_time_averaged_surrogate(0.5, 64.0, 100_000, reset=True), 3)
        0.333
    """
    if reset:
        num_substeps = _check_substeps(num_substeps)
        u = float(theta) + float(x)
        v, total = 0.0, 0.0
        for _ in range(num_substeps):
            v += u / num_substeps
            total += alpha * sigmoid_grad_ref(alpha * (v - theta))
            if v >= theta:
                v -= theta
        return total / num_substeps
    v = if_substep_potentials(x, num_substeps, theta)
    z = alpha * (v - theta)
    e = np.exp(-np.abs(z))
    return float(np.mean(alpha * e / (1.0 + e) ** 2))


def if_time_averaged_limit(x: float, alpha: float, theta: float = 1.0) -> float:
    r"""The :math:`K \to \infty` limit of :func:`if_time_averaged_surrogate`, closed form.

    .. math::

        G_\infty(x) = \frac{\sigma(\alpha x) - \sigma(-\alpha\theta)}{u},
        \qquad u = \theta + x > 0.

    For :math:`x > 0` it tends to :math:`1/u` (:math:`= 1/(1+x)` at :math:`\theta = 1`)
    as :math:`\alpha \to \infty`, with
    :math:`0 \le 1/u - G_\infty \le (e^{-\alpha x} + e^{-\alpha\theta})/u`;
    for :math:`x < 0` it tends to 0.

    Args:
        x: :math:`v - \theta`, with :math:`u = \theta + x > 0`.
        alpha: :math:`\alpha > 0`.
        theta: threshold :math:`\theta`.

    Raises:
        ValueError: :math:`u \le 0` (the limit is then not this expression).

    Examples:
        >>> [round(if_time_averaged_limit(u - 1.0, 4.0), 3) for u in (2, 3, 4, 8)]
        [0.482, 0.327, 0.246, 0.123]
    """
    u = float(theta) + float(x)
    if u <= 0:
        raise ValueError(f"the drive u = theta + x must be > 0, got u = {u!r}")
    return (sigmoid_ref(alpha * x) - sigmoid_ref(-alpha * theta)) / u


def if_rate_drive_gradient(x: float, alpha: float, num_substeps: int, theta: float = 1.0) -> float:
    r"""The sigmoid-surrogate (BPTT) gradient of the mean spike output w.r.t. the drive :math:`u`.

    For the neuron of :func:`if_substep_potentials` (no reset), with
    :math:`r = \frac1K\sum_k H(v_k - \theta)` and :math:`\partial v_k/\partial u = k/K`:

    .. math::

        \frac{\partial r}{\partial u} \approx
        \frac1K \sum_{k=1}^{K} \frac kK\,\alpha\,\sigma'\!\bigl(\alpha(v_k - \theta)\bigr)
        \;\xrightarrow[K\to\infty,\ \alpha\to\infty]{}\; \frac{\theta}{u^2}
        \quad (u > \theta).

    This is *not* the S² tail (it decays like :math:`1/u^2`): ``docs/theory.md`` uses it
    to say which perturbation reading (a) is about (a persistent membrane offset, not the
    drive).

    Args:
        x: :math:`v - \theta` of the single-step unit.
        alpha: :math:`\alpha > 0`.
        num_substeps: :math:`K \ge 1`.
        theta: threshold :math:`\theta`.

    Returns:
        The sum above as a Python float.

    Examples:
        >>> round(if_rate_drive_gradient(1.0, 200.0, 100_000), 3)
        0.25
    """
    v = if_substep_potentials(x, num_substeps, theta)
    t = np.arange(1, num_substeps + 1, dtype=np.float64) / num_substeps
    z = alpha * (v - theta)
    e = np.exp(-np.abs(z))
    return float(np.mean(t * alpha * e / (1.0 + e) ** 2))


def if_first_spike_time(x: float, num_substeps: int, theta: float = 1.0) -> float:
    r"""Reading (b): the first-spike time of the simulated IF neuron within the step.

    The neuron of :func:`if_substep_potentials` first reaches threshold (tie rule
    :math:`v_k \ge \theta` spikes, as :math:`H(0) = 1`) at

    .. math::

        t_K = \frac{k^*}{K}, \quad k^* = \min\{k : v_k \ge \theta\}
        \;\xrightarrow[K\to\infty]{}\; t^* = \frac{\theta}{u},
        \qquad -\ln t^* = \ln\frac{u}{\theta} = \ln(1 + x)\ \ (\theta = 1),

    with :math:`t^* \le t_K < t^* + 1/K`, hence
    :math:`0 \le \ln t_K - \ln t^* \le u/(\theta K)`. :math:`\ln(1 + x)` is the tail of
    the S² primitive, up to the factor :math:`\beta` and the constant :math:`1/2`.

    Args:
        x: :math:`v - \theta` of the single-step unit.
        num_substeps: :math:`K \ge 1`.
        theta: threshold :math:`\theta > 0`.

    Returns:
        :math:`t_K \in (0, 1]`, or ``math.inf`` when the neuron does not reach
        threshold within the step (:math:`x < 0`, up to rounding).

    Examples:
        >>> if_first_spike_time(1.0, 8)
        0.5
        >>> if_first_spike_time(0.0, 8)
        1.0
        >>> if_first_spike_time(-0.5, 8)
        inf
    """
    v = if_substep_potentials(x, num_substeps, theta)
    crossed = np.nonzero(v >= theta)[0]
    if crossed.size == 0:
        return math.inf
    return float(crossed[0] + 1) / num_substeps
