#!/usr/bin/python3
"""k-means fixtures for tests/unit/test_kmeans.c (scikit-learn 1.2.1, NumPy 1.24 of Debian 12).

    /usr/bin/python3 tests/ref/kmeans_ref.py tests/data/hubert/kmeans

points.f32      [2000, 16] float32: 24 anisotropic Gaussian clusters of different sizes and
                spreads (1960 points) plus 2 % uniform background (seed 7)
init.f32        [24, 16] initial centres: 24 distinct points chosen with seed 11
lloyd10.f32     [24, 16] centres after exactly 10 Lloyd iterations from init.f32 (float64)
lloyd10.txt     inertia of the assignment made in each of those iterations
sklearn.txt     KMeans(24, init="k-means++", n_init=n, random_state=r).inertia_, n = 1 then 10, r = 0..4
"""
import os
import sys

import numpy as np
from sklearn.cluster import KMeans

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
K, D, N = 24, 16, 2000
N_CLUSTERED = int(0.98 * N)
sizes = rng.multinomial(N_CLUSTERED - K * 20, rng.dirichlet(np.ones(K) * 2)) + 20
parts = []
for k in range(K):
    center = rng.normal(0, 10, D)
    basis = rng.normal(0, 1, (D, D)) * rng.uniform(0.3, 1.5)
    parts.append(center + rng.normal(0, 1, (sizes[k], D)) @ basis * 0.3)
X = np.concatenate(parts)
background = rng.uniform(X.min(0), X.max(0), (N - len(X), D)) if len(X) < N else np.zeros((0, D))
X = np.concatenate([X, background])[:N]
X = X[rng.permutation(len(X))].astype(np.float32)
X.tofile(os.path.join(out, "points.f32"))

init = X[np.random.default_rng(11).choice(len(X), K, replace=False)].astype(np.float32)
init.tofile(os.path.join(out, "init.f32"))
C = init.astype(np.float64)
Xd = X.astype(np.float64)
inertias = []
for it in range(10):
    d = ((Xd[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    lab = d.argmin(1)
    inertias.append(d[np.arange(len(X)), lab].sum())
    assert len(np.unique(lab)) == K, "an empty cluster: pick another init"
    C = np.stack([Xd[lab == k].mean(0) for k in range(K)])
C.astype(np.float32).tofile(os.path.join(out, "lloyd10.f32"))
np.savetxt(os.path.join(out, "lloyd10.txt"), inertias, fmt="%.6f")

sk = [KMeans(K, init="k-means++", n_init=n_init, random_state=r).fit(X).inertia_ for n_init in (1, 10) for r in range(5)]
np.savetxt(os.path.join(out, "sklearn.txt"), sk, fmt="%.6f")
print("points", X.shape, "lloyd10 inertia", inertias[-1], "sklearn", sk)
