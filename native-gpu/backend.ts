// The one interface every compute backend implements (cpu: onnxruntime + typed arrays,
// webgpu: Dawn + WGSL). The engine only ever talks to this; both backends must return the same
// token ids (exact ties aside) and sums/pixels within float tolerance.

/** A dense row-major matrix. f16 codebooks arrive as raw IEEE half bits in a Uint16Array. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

export interface HalfMatrix {
  rows: number;
  cols: number;
  /** IEEE 754 binary16 bit patterns, row-major. */
  half: Uint16Array;
}

export type CodebookData = Matrix | HalfMatrix;

/** A codebook uploaded once to a backend (GPU buffers, ONNX initializers, norms...). */
export interface CodebookHandle {
  readonly k: number;
  readonly d: number;
  dispose(): void;
}

export interface NearestResult {
  /** index of the nearest code for each query (int32, length = queries.rows) */
  ids: Int32Array;
  /** squared L2 distance to that code */
  distances: Float32Array;
}

/** The coarse level of an IVF index: K1 coarse centroids and the cell of every code. */
export interface CoarseData {
  /** [K1 x d] */
  centroids: CodebookData;
  /** each code's cell, in [0, K1); length K */
  assign: Int32Array;
}

/** A codebook uploaded with its coarse level for IVF search (codes grouped by cell). */
export interface IvfHandle {
  readonly k: number;
  readonly d: number;
  /** coarse cells K1 (empty cells included) */
  readonly cells: number;
  dispose(): void;
}

export interface IvfControl extends RunControl {
  /** coarse cells searched per query, a whole number in [1, cells] */
  nprobe: number;
}

export interface KMeansStepResult {
  ids: Int32Array;
  distances: Float32Array;
  /** per-code sum of the assigned points, [K x d], accumulated in f64 on the host side */
  sums: Float64Array;
  /** per-code number of assigned points, [K] */
  counts: Float64Array;
  /** sum of squared distances of all points to their code */
  inertia: number;
}

export interface RunControl {
  signal?: AbortSignal;
}

export type BackendName = 'cpu' | 'webgpu';
export type DeviceChoice = 'auto' | BackendName;

export interface ComputeBackend {
  readonly name: BackendName;
  /** Human-readable description of what computes, e.g. "cpu (onnxruntime, 2 threads)",
   *  "webgpu: NVIDIA H200 (vulkan)". Every result the engine reports carries it. It can change
   *  while the backend lives (a lost GPU: the CPU computes from then on), so read it when a result
   *  is made, never once up front. */
  readonly device: string;

  loadCodebook(codebook: CodebookData): Promise<CodebookHandle>;
  /** exact nearest code (squared L2) for every query row */
  nearest(codebook: CodebookHandle, queries: Matrix, control?: RunControl): Promise<NearestResult>;
  /** IVF index over the codes: grouped by coarse cell once here (no copy when `assign` is
   *  already sorted, as codebooks built two-level store it) */
  loadIvf(codes: CodebookData, coarse: CoarseData): Promise<IvfHandle>;
  /** For every query the nearest code among the codes of its `nprobe` nearest coarse cells
   *  (squared L2; exact distances). nprobe = cells gives exact search's ids (exact ties aside). */
  nearestIvf(index: IvfHandle, queries: Matrix, control: IvfControl): Promise<NearestResult>;
  /** one k-means assignment pass plus per-code sums and counts for the update */
  kmeansStep(codebook: CodebookHandle, points: Matrix, control?: RunControl): Promise<KMeansStepResult>;
  /** counts[k] = number of ids equal to k (ids outside [0,k) are an error) */
  histogram(ids: Int32Array, k: number): Promise<Uint32Array>;
  /** token grid -> pixels: atlas is [K x 3*p*p] (channel-major patch, values in [0,1]);
   *  returns a planar RGB image [3 x gridH*p x gridW*p] */
  mosaic(atlas: Matrix, ids: Int32Array, gridH: number, gridW: number, patch: number): Promise<Float32Array>;
  /** orthonormal 2-D DCT of each p x p patch of a planar RGB image [3 x H x W]
   *  -> [(H/p)*(W/p) x 3*p*p], rows in raster order, each row channel-major */
  dctPatches(image: Float32Array, height: number, width: number, patch: number): Promise<Matrix>;
  /** inverse of dctPatches */
  idctPatches(coefficients: Matrix, gridH: number, gridW: number, patch: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}
