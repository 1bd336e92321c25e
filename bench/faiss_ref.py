"""FAISS reference for `npm run bench`: the same cases, on the same .npy data, timed the same way
(warm-up runs, then the median). Each case runs in a process of its own, so that its peak RSS is
its own and no two cases' data are ever in memory together. Prints one JSON object; also saves the
ids FAISS found so the TypeScript side can check that both agree.

    /usr/bin/python3 bench/faiss_ref.py BENCH_DIR > BENCH_DIR/faiss.json
    /usr/bin/python3 bench/faiss_ref.py BENCH_DIR CASE_ID     (one case; what the first form runs)
"""
import json
import os
import resource
import subprocess
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


def read_rows(path, rows, start=0):
    """Rows [start, start + rows) of an .npy file, read with plain reads: only those rows ever
    enter memory (np.load would read all of it, a memory map would count the file in the RSS)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        n = max(0, min(rows, shape[0] - start))
        f.seek(start * shape[1] * dtype.itemsize, os.SEEK_CUR)
        return np.fromfile(f, dtype=dtype, count=n * shape[1]).reshape(n, shape[1])


def flat_index(path, rows, d):
    """IndexFlatL2 over the first `rows` vectors, added block by block: the process holds the
    index's own copy and one block, as ours holds its codebook."""
    index = faiss.IndexFlatL2(d)
    for start in range(0, rows, 65536):
        index.add(read_rows(path, min(65536, rows - start), start))
    return index


def run_case(bench_dir, case):
    d = case["d"]
    vectors = os.path.join(bench_dir, "vectors-%d.npy" % d)
    if case["kind"] == "search":
        queries = read_rows(os.path.join(bench_dir, "queries-%d.npy" % d), case["queries"])
        index = flat_index(vectors, case["k"], d)
        result = time_runs(lambda: index.search(queries, 1), case["warmup"], case["runs"])
        ids = index.search(queries, 1)[1][:, 0]
    else:
        points = read_rows(vectors, case["points"])
        init = np.ascontiguousarray(points[: case["k"]])

        def one_iteration():
            # one Lloyd iteration from the given centroids: assign every point, recompute the means
            km = faiss.Kmeans(d, case["k"], niter=1, max_points_per_centroid=1 << 30,
                              min_points_per_centroid=1, verbose=False)
            km.train(points, init_centroids=init)
            return km

        result = time_runs(one_iteration, case["warmup"], case["runs"])
        index = faiss.IndexFlatL2(d)
        index.add(init)
        ids = index.search(points, 1)[1][:, 0]
    np.save(os.path.join(bench_dir, "faiss-ids-%s.npy" % case["id"]), ids.astype(np.int32))
    result["maxRssMb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main():
    bench_dir = sys.argv[1]
    cases = json.load(open(os.path.join(bench_dir, "cases.json")))
    faiss.omp_set_num_threads(os.cpu_count())
    if len(sys.argv) > 2:
        case = next(c for c in cases if c["id"] == sys.argv[2])
        print(json.dumps({
            "versions": {"faiss": faiss.__version__, "numpy": np.__version__},
            "threads": faiss.omp_get_max_threads(),
            "blas": blas_in_use(),
            "result": run_case(bench_dir, case),
        }))
        return
    report = {"results": {}}
    # variants of a case (ours on an f16 codebook, ours without the prefilter) compare with its run
    for case in (c for c in cases if "faissCase" not in c):
        print("faiss: %s" % case["id"], file=sys.stderr)
        one = json.loads(subprocess.run([sys.executable, __file__, bench_dir, case["id"]],
                                        check=True, stdout=subprocess.PIPE).stdout)
        report["results"][case["id"]] = one.pop("result")
        report.update(one)
    print(json.dumps(report))


main()
