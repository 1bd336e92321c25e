"""FAISS reference for `npm run bench`: the same cases, on the same .npy data, timed the same way
(warm-up runs, then the median). Prints one JSON object; also saves the ids FAISS found so the
TypeScript side can check that both agree.

    /usr/bin/python3 bench/faiss_ref.py BENCH_DIR > BENCH_DIR/faiss.json
"""
import json
import os
import resource
import statistics
import sys
import time

import faiss
import numpy as np


def time_runs(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    return {"ms": ms, "median": sorted(ms)[len(ms) // 2]}


def blas_in_use():
    """Which BLAS library the process mapped (faiss's GEMM runs on it)."""
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return ", ".join(sorted(os.path.basename(l) + " (" + os.path.dirname(l) + ")" for l in libs)) or "unknown"


def main():
    bench_dir = sys.argv[1]
    cases = json.load(open(os.path.join(bench_dir, "cases.json")))
    load = lambda name: np.load(os.path.join(bench_dir, name))
    faiss.omp_set_num_threads(os.cpu_count())
    results = {}
    for case in cases:
        if case["kind"] == "search":
            queries = load("queries.npy")[: case["queries"]]
            codebook = np.ascontiguousarray(load("codebook.npy")[: case["k"]])
            index = faiss.IndexFlatL2(case["d"])
            index.add(codebook)
            results[case["id"]] = time_runs(lambda: index.search(queries, 1), case["warmup"], case["runs"])
            ids = index.search(queries, 1)[1][:, 0]
        else:
            points = load("points.npy")[: case["points"]]
            init = np.ascontiguousarray(points[: case["k"]])

            def one_iteration():
                # one Lloyd iteration from the given centroids: assign every point, recompute the means
                km = faiss.Kmeans(case["d"], case["k"], niter=1, max_points_per_centroid=1 << 30,
                                 min_points_per_centroid=1, verbose=False)
                km.train(points, init_centroids=init)
                return km

            results[case["id"]] = time_runs(one_iteration, case["warmup"], case["runs"])
            index = faiss.IndexFlatL2(case["d"])
            index.add(init)
            ids = index.search(points, 1)[1][:, 0]
        np.save(os.path.join(bench_dir, "faiss-ids-%s.npy" % case["id"]), ids.astype(np.int32))
    print(json.dumps({
        "versions": {"faiss": faiss.__version__, "numpy": np.__version__},
        "threads": faiss.omp_get_max_threads(),
        "blas": blas_in_use(),
        "maxRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": results,
    }))


main()
