"""FAISS's two-level clustering for `npm run bench -- --scale`, the reference our two-level build is
timed against. It does what faiss.contrib.clustering.two_level_clustering does (coarse faiss.Kmeans,
assign every vector to its cell, per-cell faiss.Kmeans), with each cell's share of K in proportion
to its size (shares = floor(K x cumulative / N) differences, as later FAISS versions' `rebalance`
computes them; Debian's 1.7.3 takes the shares from the caller). Written out rather than called so
that the iteration count and the coarse level's points-per-centroid cap are the benchmark's:
contrib's coarse level uses max_points_per_centroid = 2000, the benchmark gives both sides 256
(faiss.Kmeans's default, which the per-cell level uses in contrib too).

    /usr/bin/python3 bench/faiss_twolevel.py SHARDS_DIR K K1 ITERATIONS POINTS_PER_CENTROID OUT.npy > result.json

Reads the f16 .npy shards of SHARDS_DIR (name order) into one f32 array, as FAISS needs its
training set in memory, clusters, saves the K x d centroids to OUT.npy, and prints one JSON object:
seconds per step (loading excluded from `clustering`), peak RSS, versions.
"""
import json
import os
import resource
import sys
import time

import faiss
import numpy as np


def load_shards(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".npy"))
    arrays = [np.load(os.path.join(folder, n), mmap_mode="r") for n in names]
    rows = sum(a.shape[0] for a in arrays)
    x = np.empty((rows, arrays[0].shape[1]), dtype=np.float32)
    at = 0
    for a in arrays:
        x[at:at + a.shape[0]] = a
        at += a.shape[0]
    return x


def proportional_shares(sizes, k):
    cumulative = np.cumsum(sizes)
    shares = cumulative * k // cumulative[-1]
    shares[1:] -= shares[:-1].copy()
    return shares


def main():
    folder, k, k1, niter, per_centroid, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    faiss.omp_set_num_threads(os.cpu_count())
    t0 = time.perf_counter()
    xt = load_shards(folder)
    d = xt.shape[1]
    t_loaded = time.perf_counter()

    coarse = faiss.Kmeans(d, k1, niter=niter, max_points_per_centroid=per_centroid)
    coarse.train(xt)
    t_coarse = time.perf_counter()
    _, assign1 = coarse.assign(xt)
    sizes = np.bincount(assign1, minlength=k1)
    order = assign1.argsort()
    del coarse
    t_assign = time.perf_counter()

    shares = proportional_shares(sizes, k)
    assert shares.sum() == k
    centroids = []
    i0 = 0
    for cell in range(k1):
        i1 = i0 + sizes[cell]
        if shares[cell] > 0:
            km = faiss.Kmeans(d, int(shares[cell]), niter=niter, max_points_per_centroid=per_centroid)
            km.train(xt[order[i0:i1]])
            centroids.append(km.centroids)
            del km
        i0 = i1
    t_cells = time.perf_counter()
    np.save(out, np.vstack(centroids))

    print(json.dumps({
        "versions": {"faiss": faiss.__version__, "numpy": np.__version__},
        "threads": faiss.omp_get_max_threads(),
        "rows": int(xt.shape[0]),
        "seconds": {
            "load": t_loaded - t0,
            "coarse": t_coarse - t_loaded,
            "assign": t_assign - t_coarse,
            "cells": t_cells - t_assign,
            "clustering": t_cells - t_loaded,
        },
        "cellSizes": [int(sizes.min()), int(sizes.max())],
        "maxRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


main()
