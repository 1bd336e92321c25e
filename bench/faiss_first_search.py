"""FAISS's side of bench/first-search.bench.ts: what a user's whole process does to find the nearest
code of one image's patch vectors, as `unicode2 search --exact` does it. Reads the codebook's
frozen table (f16) from the .safetensors file, widens it to f32, adds it to an IndexFlatL2,
searches the queries (.npy, k=1) and saves the ids as int32 .npy. Prints the phases' seconds as
JSON; the caller times the whole process.

    /usr/bin/python3 bench/faiss_first_search.py CODEBOOK.safetensors QUERIES.npy OUT.npy
"""
import json
import os
import resource
import struct
import sys
import time

t_start = time.perf_counter()
import faiss  # noqa: E402  (the import is part of the process's cost)
import numpy as np  # noqa: E402


def read_frozen(path):
    """The `frozen` tensor of a safetensors file, read with one plain read (as ours reads it)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        info = header["frozen"]
        begin, end = info["data_offsets"]
        dtype = {"F16": np.float16, "F32": np.float32}[info["dtype"]]
        f.seek(8 + header_len + begin)
        return np.fromfile(f, dtype=dtype, count=(end - begin) // np.dtype(dtype).itemsize).reshape(info["shape"])


def main():
    codebook, queries_file, out = sys.argv[1:4]
    t0 = time.perf_counter()
    frozen = read_frozen(codebook)
    t1 = time.perf_counter()
    index = faiss.IndexFlatL2(frozen.shape[1])
    index.add(np.ascontiguousarray(frozen, dtype=np.float32))
    del frozen
    t2 = time.perf_counter()
    queries = np.load(queries_file).astype(np.float32)
    t3 = time.perf_counter()
    ids = index.search(queries, 1)[1][:, 0]
    t4 = time.perf_counter()
    np.save(out, ids.astype(np.int32))
    t5 = time.perf_counter()
    print(json.dumps({
        "import": t0 - t_start, "read": t1 - t0, "add": t2 - t1, "queries": t3 - t2, "search": t4 - t3, "save": t5 - t4,
        "threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__,
        "maxRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


main()
