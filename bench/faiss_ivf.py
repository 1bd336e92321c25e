"""FAISS IndexIVFFlat reference for bench/ivf.bench.ts, run in its own process (so FAISS and our
side never hold the codebook at the same time):

    /usr/bin/python3 bench/faiss_ivf.py CASE_DIR NLIST NPROBES [RUNS] > CASE_DIR/faiss.json

CASE_DIR holds the codes as shards (codes-*.npy, f32, in the order ivf.bench.ts grouped them, so
ids compare directly), queries.npy, and exact.npy / exact-dist.npy (our exact search: ids and
squared distances, the ground truth). FAISS trains its own coarse quantizer with NLIST cells on the
codes, adds them, then for each nprobe in NPROBES (comma-separated, ascending) searches the queries
once for recall@1, stopping at the first nprobe whose recall reaches the target (env TARGET_RECALL,
default 0.95), which it then times (median of RUNS runs, default 3).

recall@1 uses the same rule as extension/engine/search/search.ts foundNearest: a query is found when its
id is the exact one, or its distance is within 4 x 2^-24 x sqrt(d) x (|q|^2 + |c|^2) of the exact
distance (a tie to f32 rounding).
"""
import glob
import json
import os
import resource
import sys
import time

import faiss
import numpy as np



def recall_at_1(ids, dist, exact, exact_dist, queries, codes_sq):
    tol = 4 * 2.0 ** -24 * np.sqrt(queries.shape[1]) * ((queries * queries).sum(axis=1) + codes_sq[exact])
    found = (ids == exact) | (dist - exact_dist <= tol)
    return float(found.mean())


def main():
    case_dir, nlist, nprobes = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3].split(",")]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    target = float(os.environ.get("TARGET_RECALL", "0.95"))
    faiss.omp_set_num_threads(os.cpu_count())
    queries = np.load(os.path.join(case_dir, "queries.npy"))
    exact = np.load(os.path.join(case_dir, "exact.npy")).astype(np.int64)
    exact_dist = np.load(os.path.join(case_dir, "exact-dist.npy"))
    shards = sorted(glob.glob(os.path.join(case_dir, "codes-*.npy")))
    d = queries.shape[1]

    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    # FAISS samples at most 256 points per cell for training (its own default): read only those.
    want = 256 * nlist
    sample, have = [], 0
    for shard in shards:
        if have >= want:
            break
        part = np.load(shard, mmap_mode="r")[: want - have]
        sample.append(np.array(part))
        have += len(part)
    t0 = time.perf_counter()
    index.train(np.concatenate(sample))
    train_s = time.perf_counter() - t0
    del sample
    t0 = time.perf_counter()
    codes_sq = []
    for shard in shards:
        part = np.load(shard)
        index.add(part)
        codes_sq.append((part * part).sum(axis=1))
        del part
    add_s = time.perf_counter() - t0
    codes_sq = np.concatenate(codes_sq)

    curve = []
    chosen = None
    for nprobe in nprobes:
        index.nprobe = nprobe
        t0 = time.perf_counter()
        dist, ids = index.search(queries, 1)
        seconds = time.perf_counter() - t0
        recall = recall_at_1(ids[:, 0], dist[:, 0], exact, exact_dist, queries, codes_sq)
        curve.append({"nprobe": nprobe, "recall": recall, "seconds": seconds})
        if recall >= target:
            chosen = nprobe
            break
    timed = None
    if chosen is not None:
        index.nprobe = chosen
        ms = []
        for _ in range(runs):
            t0 = time.perf_counter()
            index.search(queries, 1)
            ms.append((time.perf_counter() - t0) * 1000)
        timed = {"nprobe": chosen, "ms": ms, "median": sorted(ms)[len(ms) // 2]}
    print(json.dumps({
        "faiss": faiss.__version__,
        "threads": faiss.omp_get_max_threads(),
        "nlist": nlist,
        "trainSeconds": train_s,
        "addSeconds": add_s,
        "curve": curve,
        "timed": timed,
        "maxRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


main()
