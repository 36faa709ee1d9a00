"""The checks of assignment 2 (PCA and autoencoders), one per exercise.

The answer key: scratchvae.linear.PCA (by the SVD, which never forms the covariance),
scratchvae.models.TiedAutoencoder, and scikit-learn's roc_auc_score. A check prints
"Correct: ..." or stops with "Not yet: ..." and a hint.
"""

import numpy as np

from scratchvae import backend, datasets, losses
from scratchvae.linear import PCA, subspace_angles
from scratchvae.models import TiedAutoencoder
from verdict import call, close, compare, fail, own_work, require, returned


def np_(a):
    return np.asarray(backend.to_numpy(a), dtype=np.float64)


def synthetic(seed=0, n=300, p=8, q=3, noise=0.2):
    """Low-rank data with distinct top eigenvalues: (n, p) float64."""
    return datasets.low_rank(n=n, p=p, q=q, noise=noise, seed=seed).x


def digits():
    """The embedded digits, float64: (x_train, y_train, x_test, y_test)."""
    ds = datasets.load("digits")
    return (ds.x_train.astype(np.float64), ds.y_train, ds.x_test.astype(np.float64), ds.y_test)


def _reference(X):
    """Mean, all eigenvalues of S = Xc'Xc / N (descending) and the directions (rows)."""
    N, D = X.shape[0], X.shape[1]
    pca = PCA(min(N, D)).fit(X)
    lam = backend.to_numpy(pca.explained_variance_) * (N - 1) / N  # the library's lambda_j use N - 1
    return backend.to_numpy(pca.mean_), lam, backend.to_numpy(pca.components_)


# ---------------------------------------------------------------- 2.1 PCA by eigendecomposition

def pca_fit(pca_fit, X=None, q=3):
    """Exercise 2.1: mean, top-q directions and every eigenvalue of the covariance, L2 (2)-(4)."""
    own_work(pca_fit)
    X = synthetic() if X is None else X
    N, D = X.shape[0], X.shape[1]
    mean, components, eigvals = returned(call(pca_fit, X, q), ["mean", "components", "eigvals"], "pca_fit")
    ref_mean, ref_lam, ref_comp = _reference(X)
    compare("mean", mean, ref_mean, "the data mean", hint="the mean over the examples (axis 0): shape (D,).",
            say_correct=False)
    eigvals = np.asarray(eigvals, dtype=np.float64)
    order_hint = ("np.linalg.eigh returns the eigenvalues in ASCENDING order, and the eigenvectors as "
                  "the COLUMNS of its second output: reverse both to put the largest first.")
    if eigvals.shape == ref_lam.shape and np.allclose(eigvals[::-1], ref_lam, rtol=1e-6, atol=1e-9 * ref_lam[0]):
        fail("your eigvals are in ascending order; the largest must come first. Hint: " + order_hint)
    if eigvals.shape == ref_lam.shape and np.allclose(eigvals, ref_lam * N / (N - 1), rtol=1e-6):
        fail(f"your eigvals are {N}/{N - 1} times the expected ones: S = Xc^T Xc / N in the lessons "
             "(np.cov divides by N - 1). Hint: form S from the centred data and divide by N, L2 (2).")
    compare("eigvals", eigvals, ref_lam, "the eigenvalues of S = Xc^T Xc / N (from scratchvae's SVD)",
            hint="centre the data first (x - mean), form S = Xc^T Xc / N, L2 (2), and take all D of its "
                 "eigenvalues, largest first. " + order_hint, atol=1e-10 * ref_lam[0], say_correct=False)
    components = np.asarray(components, dtype=np.float64)
    if components.shape == (D, q):
        fail(f"components has shape {(D, q)}; it should be {(q, D)}: one direction per ROW, like "
             "scratchvae's components_. Hint: transpose the top-q eigenvector columns.")
    if components.shape != (q, D):
        fail(f"components has shape {components.shape}; it should be {(q, D)}, the top q = {q} "
             "directions, one per row.")
    signs = np.sign(np.sum(components * ref_comp[:q], axis=1, keepdims=True))  # a direction's sign is free
    signs[signs == 0] = 1.0
    compare("components (signs aligned)", components * signs, ref_comp[:q],
            "scratchvae.linear.PCA's components_",
            hint="the top-q eigenvectors of S, L2 (3)-(4), as unit-length rows. " + order_hint, say_correct=False)
    print(f"Correct: your mean, all {D} eigenvalues and the top {q} directions match scratchvae.linear.PCA "
          "(directions up to sign).")


# ---------------------------------------------------------------- 2.2 encode, decode, variance explained

def pca_reconstruct(pca_fit_fn, pca_reconstruct, explained_variance, X=None, q=3):
    """Exercise 2.2: x_hat = mean + U_q U_q^T (x - mean), L2 (6), and rho(q), L2 (5)."""
    require("2.1", "pca_fit", pca_fit, pca_fit_fn)
    own_work(pca_reconstruct)
    own_work(explained_variance)
    X = synthetic(seed=1) if X is None else X
    N, D = X.shape[0], X.shape[1]
    mean, components, eigvals = call(pca_fit_fn, X, q)
    X_hat = returned(call(pca_reconstruct, X, mean, components), ["X_hat"], "pca_reconstruct")
    pca = PCA(q).fit(X)
    compare("X_hat", X_hat, pca.inverse_transform(pca.transform(X)), "scratchvae's PCA reconstruction",
            hint="encode z = (x - mean) U_q, then decode x_hat = mean + z U_q^T, L2 (6); with components "
                 "holding U_q^T (q, D), that is z = (x - mean) @ components.T.", say_correct=False)
    error = np.sum((np.asarray(X_hat) - X) ** 2)
    compare("training error sum ||x - x_hat||^2", error, N * np.sum(_reference(X)[1][q:]),
            "N times the sum of the discarded eigenvalues, L2 (4)",
            hint="reconstruct from the top-q directions only.", say_correct=False)
    rho = returned(call(explained_variance, eigvals), ["rho"], "explained_variance")
    ref = np.cumsum(backend.to_numpy(PCA(min(N, D)).fit(X).explained_variance_ratio_))
    compare("rho", rho, ref, "the cumulative sum of scratchvae's explained_variance_ratio_",
            hint="rho(q) = (lambda_1 + ... + lambda_q) / (lambda_1 + ... + lambda_D), L2 (5), for "
                 "q = 1, ..., D: a cumulative sum divided by the total.", say_correct=False)
    print(f"Correct: your reconstruction matches scratchvae's, its training error is N times the "
          f"discarded eigenvalues (L2 (4)), and your rho matches (rho({q}) = {float(np.asarray(rho)[q - 1]):.4f}).")


# ---------------------------------------------------------------- 2.3 the tied autoencoder's gradient

def _tied_terms(model, x):
    """The encoder and the decoder term of dL/dW, L3 (2), for the hints: the decoder's
    (dL/dx_hat)^T h from the model's own pieces, the encoder's as the rest of its dL/dW."""
    h = np_(model.encode(x))
    _, dx_hat = losses.mse(model.reconstruct(x), x)
    dec = np_(dx_hat).T @ h
    return np_(model.grads["W"]) - dec, dec


def tied_ae(tied_ae_loss_and_grads, activation="tanh", seed=3, shape=(6, 5, 3)):
    """Exercise 2.3: the tied autoencoder's loss, L3 (1), and its two-term gradient, L3 (2)."""
    own_work(tied_ae_loss_and_grads)
    N, D, K = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    p = {"W": rng.normal(0.0, 0.5, size=(D, K)), "b_enc": rng.normal(size=K), "b_dec": rng.normal(size=D)}
    loss, grads = returned(call(tied_ae_loss_and_grads, x, p, activation), ["loss", "grads"],
                           "tied_ae_loss_and_grads")
    ref = TiedAutoencoder(D, K, activation=activation, bias=True)
    ref.params.update({k: np.copy(v) for k, v in p.items()})
    ref_loss, _ = ref.loss_and_grads(x)
    compare("loss", loss, ref_loss, "scratchvae.models.TiedAutoencoder",
            hint="L = (1/N) sum_n ||x_n - x_hat_n||^2, L3 (1): a sum over the D dimensions, a mean over "
                 "the N examples.")
    if not isinstance(grads, dict) or set(grads) != {"W", "b_enc", "b_dec"}:
        fail(f"grads should be a dict with the keys 'W', 'b_enc', 'b_dec', got "
             f"{sorted(grads) if isinstance(grads, dict) else type(grads).__name__}.")
    enc, dec = _tied_terms(ref, x)
    for only, missing in ((enc, "decoder's"), (dec, "encoder's")):
        if np.allclose(np.asarray(grads["W"], dtype=np.float64), only, rtol=1e-6, atol=1e-12):
            fail(f"your dW is only one of its two terms: the {missing} use of W is missing. Hint: W is "
                 "used twice, in a = x W + b_enc and in x_hat = h W^T + b_dec, so dL/dW is the sum of "
                 "x^T (dL/dh * g'(a)) and (dL/dx_hat)^T h, L3 (2).")
    for k in ("b_dec", "b_enc", "W"):
        compare(f"d{k}", grads[k], ref.grads[k], "scratchvae.models.TiedAutoencoder",
                hint={"W": "dL/dW = x^T (dL/dh * g'(a)) + (dL/dx_hat)^T h, L3 (2), with "
                           "dL/dx_hat = 2 (x_hat - x) / N and dL/dh = dL/dx_hat W.",
                      "b_enc": "dL/db_enc is dL/da = (dL/dx_hat W) * g'(a) summed over the rows; "
                               "tanh'(a) = 1 - h^2.",
                      "b_dec": "dL/db_dec is dL/dx_hat = 2 (x_hat - x) / N summed over the rows."}[k])


# ---------------------------------------------------------------- 2.4 gradient descent finds PCA

def tied_linear_pca(tied_fn, fit_tied_linear, seed=0, steps=500, lr=0.05):
    """Exercise 2.4: a tied linear autoencoder trained by gradient descent spans the PCA
    subspace, and its loss reaches the sum of the discarded eigenvalues, L2 (4), (7)."""
    require("2.3", "tied_ae_loss_and_grads", tied_ae, tied_fn, activation="linear")
    own_work(fit_tied_linear)
    d = datasets.low_rank(n=500, p=10, q=3, noise=0.1, seed=seed)
    X, q = d.x - np.mean(d.x, axis=0), 3  # centred, as in L2 (7)
    params, losses = returned(call(fit_tied_linear, X, q, lr, steps, seed),
                              ["params", "losses"], "fit_tied_linear")
    losses = np.asarray(losses, dtype=np.float64)
    if losses.shape != (steps,):
        fail(f"losses should hold the loss of each of the {steps} steps, shape ({steps},), got shape {losses.shape}.")
    if not np.all(np.isfinite(losses)) or losses[-1] > losses[0]:
        fail(f"the loss went from {losses[0]:.4g} to {losses[-1]:.4g}: it should fall. Hint: step "
             "against the gradient, p <- p - lr * dL/dp, for W, b_enc and b_dec.")
    W = np.asarray(params["W"], dtype=np.float64)
    pca = PCA(q).fit(X)
    angle = float(np.degrees(np.max(backend.to_numpy(subspace_angles(W, backend.to_numpy(pca.components_).T)))))
    floor = np.sum(_reference(X)[1][q:])
    close("final loss", losses[-1], floor, "the sum of the discarded eigenvalues, L2 (4) over N",
          rtol=1e-4, hint=f"take all {steps} steps with lr = {lr}, each from the gradient of your 2.3 with "
                          "activation='linear', starting from small random W and zero biases.", say_correct=False)
    if angle > 0.1:
        fail(f"the largest principal angle between span(W) and PCA's top-{q} subspace is {angle:.3g} "
             "degrees; it should be below 0.1. Hint: train W, b_enc and b_dec, each with its own gradient "
             "from your 2.3, on X as given.")
    print(f"Correct: after {steps} steps your loss is {losses[-1]:.6g} (the discarded eigenvalues sum to "
          f"{floor:.6g}) and span(W) is within {angle:.2g} degrees of PCA's subspace.")


# ---------------------------------------------------------------- 2.5 anomaly detection

def auc_reference(normal, anomalous):
    """The area under the ROC curve, by scikit-learn (anomalies labelled 1)."""
    from sklearn.metrics import roc_auc_score

    normal, anomalous = np.asarray(normal, dtype=np.float64), np.asarray(anomalous, dtype=np.float64)
    labels = np.concatenate([np.zeros(normal.shape[0]), np.ones(anomalous.shape[0])])
    return float(roc_auc_score(labels, np.concatenate([normal, anomalous])))


HELD_OUT = 4  # the digit left out of training: the anomaly
TARGET_AUC = 0.95


def roc_auc(roc_auc):
    """Exercise 2.5: the area under the ROC curve, L3 (6)."""
    own_work(roc_auc)
    rng = np.random.default_rng(5)
    normal, anomalous = rng.normal(size=40), rng.normal(1.0, 1.0, size=30)
    got = returned(call(roc_auc, normal, anomalous), ["auc"], "roc_auc")
    hint = ("the AUC is the fraction of (normal, anomalous) pairs in which the anomaly scores higher, "
            "L3 (6); a tie counts one half.")
    compare("auc", got, auc_reference(normal, anomalous), "scikit-learn's roc_auc_score", hint=hint,
            say_correct=False)
    ties = np.array([0.0, 1.0, 1.0, 2.0]), np.array([1.0, 1.0, 3.0])
    compare("auc with ties", call(roc_auc, *ties), auc_reference(*ties), "scikit-learn's roc_auc_score",
            hint=hint, say_correct=False)
    print("Correct: your roc_auc ranks every pair right, ties included.")


def anomaly(fns, anomaly_scores, q, held_out=HELD_OUT, target=TARGET_AUC):
    """Exercise 2.6: PCA's reconstruction error as an anomaly score on the digits, L3 (6)."""
    require("2.2", "pca_reconstruct", pca_reconstruct, fns["pca_fit"], fns["pca_reconstruct"],
            fns["explained_variance"])
    require("2.5", "roc_auc", roc_auc, fns["roc_auc"])
    own_work(anomaly_scores)
    if q is None:
        raise NotImplementedError("set Q_ANOMALY, the number of components, in the cell of exercise 2.6")
    if not isinstance(q, (int, np.integer)) or not 1 <= q < 64:
        fail(f"Q_ANOMALY should be a whole number of components between 1 and 63, got {q!r}.")
    x_train, y_train, x_test, y_test = digits()
    train = x_train[y_train != held_out]
    scores = np.asarray(returned(call(anomaly_scores, train, x_test, int(q)), ["scores"], "anomaly_scores"),
                        dtype=np.float64)
    pca = PCA(int(q)).fit(train)
    recon = backend.to_numpy(pca.inverse_transform(pca.transform(x_test)))
    compare("scores", scores, np.sum((x_test - recon) ** 2, axis=1), "scratchvae's PCA reconstruction error",
            hint="fit PCA (your 2.1) on the training images, reconstruct the test images (your 2.2), and "
                 "return ||x - x_hat||^2 per image, shape (N,).", say_correct=False)
    auc = auc_reference(scores[y_test != held_out], scores[y_test == held_out])
    yours = float(fns["roc_auc"](scores[y_test != held_out], scores[y_test == held_out]))
    if auc < target:
        fail(f"with Q_ANOMALY = {q} components the AUC for digit {held_out} is {auc:.3f}; reach "
             f"{target}. Hint: too few components reconstruct every digit badly, too many reconstruct "
             "the anomalies well too: try a few values of q.")
    print(f"Correct: with {q} components, PCA's reconstruction error finds the held-out digit {held_out} "
          f"with AUC {yours:.3f} (at least {target} was asked).")
