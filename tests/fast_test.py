"""One small call of every public function against a float64 reference.

The fast inner loop (``pytest -m "not slow"``) leaves out the long tests; this file
keeps every public function in it, each with a value that could be wrong. The full
checks (derivatives, edge rows, sharding, accuracy) live in the per-module tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

import jsoftmax
from jsoftmax import optim
from jsoftmax import vocab_parallel

inf = np.inf
X = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 0.25, -0.5, 1.0]])
COVERED = set()


def covers(name):
    def mark(test):
        COVERED.add(name)
        return test

    return mark


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis=axis))


def _close(actual, expected, rtol=1e-12, atol=0.0):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- #
# Normalisers
# --------------------------------------------------------------------------- #
@covers("softmax")
def test_softmax():
    _close(jsoftmax.softmax(X, temperature=2.0), _softmax(X / 2.0))
    _close(jsoftmax.softmax(X, axis=(0, 1)), _softmax(X.ravel()).reshape(X.shape))


@covers("log_softmax")
def test_log_softmax():
    _close(jsoftmax.log_softmax(X, axis=0), np.log(_softmax(X, axis=0)))


@covers("logsumexp")
def test_logsumexp():
    _close(jsoftmax.logsumexp(X, temperature=0.5), 0.5 * _logsumexp(X / 0.5))
    # dT is the entropy of the softmax (an ordinary row).
    row, t = X[0], 2.0
    p = _softmax(row / t)
    _close(
        jax.grad(lambda s: jsoftmax.logsumexp(row, temperature=s))(t),
        -np.sum(p * np.log(p)),
    )


@covers("softmax_jacobian")
def test_softmax_jacobian():
    y = _softmax(X[0] / 3.0)
    _close(
        jsoftmax.softmax_jacobian(X[0], temperature=3.0),
        (np.diag(y) - np.outer(y, y)) / 3.0,
        atol=1e-15,
    )


# --------------------------------------------------------------------------- #
# Sampling
# --------------------------------------------------------------------------- #
@covers("sample")
def test_sample():
    logits = np.array([[0.0, 2.0, 1.0], [-inf, -inf, -inf], [-inf, 0.0, -inf]])
    draws = jsoftmax.sample(jax.random.key(0), logits, temperature=0.0)
    np.testing.assert_array_equal(draws, [1, -1, 1])


@covers("gumbel_softmax")
def test_gumbel_softmax():
    key = jax.random.key(3)
    logits = np.array([[0.0, -inf, -inf], [1.0, 0.5, -0.5]])
    relaxed = np.asarray(jsoftmax.gumbel_softmax(key, logits, temperature=0.7))
    _close(relaxed.sum(-1), [1.0, 1.0])
    _close(relaxed[0], [1.0, 0.0, 0.0])  # the only live entry takes everything
    hard = np.asarray(jsoftmax.gumbel_softmax(key, logits, temperature=0.7, hard=True))
    np.testing.assert_array_equal(hard, np.eye(3)[relaxed.argmax(-1)])


@covers("segment_softmax")
def test_segment_softmax():
    x = np.array([1.0, 2.0, -1.0, 0.0, 3.0])
    ids = np.array([0, 0, 1, 1, 1])
    expected = np.concatenate([_softmax(x[:2]), _softmax(x[2:])])
    _close(jsoftmax.segment_softmax(x, ids, num_segments=2), expected)


@covers("segment_logsumexp")
def test_segment_logsumexp():
    x = np.array([1.0, 2.0, -1.0, 0.0, 3.0])
    ids = np.array([0, 0, 2, 2, 2])
    _close(
        jsoftmax.segment_logsumexp(x, ids, num_segments=3),
        [_logsumexp(x[:2]), -inf, _logsumexp(x[2:])],
    )


# --------------------------------------------------------------------------- #
# Losses
# --------------------------------------------------------------------------- #
@covers("softmax_cross_entropy")
def test_softmax_cross_entropy():
    labels = _softmax(-X)
    _close(
        jsoftmax.softmax_cross_entropy(X, labels),
        -np.sum(labels * np.log(_softmax(X)), -1),
    )


@covers("softmax_cross_entropy_with_integer_labels")
def test_softmax_cross_entropy_with_integer_labels():
    labels = np.array([2, 0])
    expected = -np.log(_softmax(X))[np.arange(2), labels]
    _close(jsoftmax.softmax_cross_entropy_with_integer_labels(X, labels), expected)


@covers("sigmoid_binary_cross_entropy")
def test_sigmoid_binary_cross_entropy():
    y = np.array([1.0, 0.0, 0.25, 1.0])
    expected = -y * np.log(1 / (1 + np.exp(-X))) - (1 - y) * np.log(
        1 - 1 / (1 + np.exp(-X))
    )
    _close(jsoftmax.sigmoid_binary_cross_entropy(X, y), expected, rtol=1e-10)


@covers("linear_cross_entropy")
def test_linear_cross_entropy():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(4, 6))
    labels = np.array([5, 0, 2])
    logits = x @ w
    expected = -np.log(_softmax(logits))[np.arange(3), labels].mean()
    _close(jsoftmax.linear_cross_entropy(x, w, labels, block_size=4), expected)


@covers("vocab_parallel_integer_cross_entropy")
def test_vocab_parallel_integer_cross_entropy(cpu_devices):
    mesh = Mesh(np.array(cpu_devices[:2]), ("v",))
    labels = np.array([3, 1])
    loss = jax.shard_map(
        lambda s, y: vocab_parallel.vocab_parallel_integer_cross_entropy(s, y, "v"),
        mesh=mesh,
        in_specs=(P(None, "v"), P()),
        out_specs=P(),
    )
    expected = -np.log(_softmax(X))[np.arange(2), labels]
    _close(loss(jnp.asarray(X), jnp.asarray(labels)), expected)


# --------------------------------------------------------------------------- #
# The centered maps
# --------------------------------------------------------------------------- #
ETA = np.array([0.3, -1.2, 2.0])
LAM = 1.5
P_ETA = _softmax(np.concatenate([[0.0], LAM * ETA]))


@covers("centered_softmax")
def test_centered_softmax():
    _close(jsoftmax.centered_softmax(ETA, LAM), P_ETA)


@covers("log_centered_softmax")
def test_log_centered_softmax():
    _close(jsoftmax.log_centered_softmax(ETA, LAM), np.log(P_ETA))


@covers("inverse_softmax")
def test_inverse_softmax():
    _close(jsoftmax.inverse_softmax(P_ETA, LAM), ETA)


@covers("inverse_log_softmax")
def test_inverse_log_softmax():
    _close(jsoftmax.inverse_log_softmax(np.log(P_ETA), LAM), ETA)


def _jacobian(p, lam):
    q = p[1:]
    n = len(q)
    shifted = np.eye(n + 1)[:, 1:]  # δ_{i, j+1}
    return lam * p[:, None] * (shifted - q[None, :])


@covers("centered_softmax_jacobian")
def test_centered_softmax_jacobian():
    _close(jsoftmax.centered_softmax_jacobian(ETA, LAM), _jacobian(P_ETA, LAM))


@covers("centered_softmax_hessian")
def test_centered_softmax_hessian():
    # d/deta_k of λ p_i (δ_{i,j+1} - p_{j+1}).
    p, q, lam = P_ETA, P_ETA[1:], LAM
    d = np.eye(4)[:, 1:] - q[None, :]  # [i, j]: δ_{i,j+1} - p_{j+1}
    expected = lam**2 * (
        p[:, None, None] * d[:, :, None] * d[:, None, :]
        - p[:, None, None] * (q[:, None] * (np.eye(3) - q[None, :]))[None]
    )
    _close(jsoftmax.centered_softmax_hessian(ETA, LAM), expected, atol=1e-15)


@covers("centered_softmax_log_det")
def test_centered_softmax_log_det():
    _, expected = np.linalg.slogdet(_jacobian(P_ETA, LAM)[1:])
    _close(jsoftmax.centered_softmax_log_det(ETA, LAM), expected)


@covers("softmax_normalize")
def test_softmax_normalize():
    z = (X - X.mean(0)) / X.std(0)
    _close(jsoftmax.softmax_normalize(X), 1 / (1 + np.exp(-z)))
    _close(jsoftmax.softmax_normalize(X, kind="tanh"), np.tanh(z / 2))


# --------------------------------------------------------------------------- #
# jsoftmax.optim
# --------------------------------------------------------------------------- #
@covers("minimize")
def test_minimize():
    counts = np.array([2.0, 3.0, 5.0, 10.0])
    nll = lambda eta: -jnp.sum(counts * jsoftmax.log_centered_softmax(eta))
    result = optim.minimize(nll, jnp.zeros(3), optax.lbfgs(), max_steps=100, gtol=1e-10)
    _close(jsoftmax.centered_softmax(result.params), counts / counts.sum(), 1e-9)
    assert 0 < int(result.steps) < 100


@covers("natural_gradient")
def test_natural_gradient():
    # One step of natural gradient + sgd(α) on <c, p> is exponentiated gradient.
    c, alpha = np.array([0.5, -1.0, 2.0, 0.0]), 0.3
    linear = lambda eta: jnp.dot(c, jsoftmax.centered_softmax(eta, LAM))
    tx = optax.chain(optim.natural_gradient(LAM), optax.sgd(alpha))
    eta = jnp.asarray(ETA)
    updates, _ = tx.update(jax.grad(linear)(eta), tx.init(eta), eta)
    moved = P_ETA * np.exp(-alpha * c)
    _close(
        jsoftmax.centered_softmax(optax.apply_updates(eta, updates), LAM),
        moved / moved.sum(),
    )


def test_every_public_function_has_a_test_here():
    public = {name for name in jsoftmax.__all__ if name != "optim"} | {
        "minimize",
        "natural_gradient",
        "vocab_parallel_integer_cross_entropy",
    }
    assert COVERED == public


def test_tour_prints_only_what_jax_nn_computed(capsys):
    # The tour's jax.nn column shows a value only where jax.nn computed one.
    from jsoftmax.examples import tour

    assert tour.main() == 0
    lines = capsys.readouterr().out.splitlines()
    entropy = next(line for line in lines if "d logsumexp / dT" in line)
    assert entropy.rstrip().endswith("jax.nn — (not offered)")
    assert not any(line.rstrip().endswith("jax.nn nan") for line in lines)
